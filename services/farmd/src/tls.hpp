#pragma once
// farmd's TLS certificate and key, read and checked before gRPC sees them
// (gRPC given an unreadable or mismatched pair fails without saying why).
#include <string>

namespace farmd {

struct TlsPair {
  std::string cert_pem;
  std::string key_pem;
};

// Throws std::runtime_error: "cannot read PATH: reason", "PATH holds no PEM
// certificate", "PATH holds no PEM private key (...)", "the TLS key KEY does
// not match the certificate CERT".
TlsPair load_tls_pair(const std::string& cert_path, const std::string& key_path);

}  // namespace farmd
