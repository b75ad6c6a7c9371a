#include "tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>

#include "farm/common/util.hpp"

namespace farmd {

namespace {

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "no details";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// No passphrase: OpenSSL's default would prompt on the terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

}  // namespace

TlsPair load_tls_pair(const std::string& cert_path, const std::string& key_path) {
  TlsPair p;
  p.cert_pem = farm::read_file(cert_path);  // "cannot read PATH: reason"
  p.key_pem = farm::read_file(key_path);
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> cb(BIO_new_mem_buf(p.cert_pem.data(), static_cast<int>(p.cert_pem.size())),
                                               &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(cb.get(), nullptr, no_passphrase, nullptr), &X509_free);
  if (!cert) throw std::runtime_error(cert_path + " holds no PEM certificate (" + ssl_error() + ")");
  std::unique_ptr<BIO, decltype(&BIO_free)> kb(BIO_new_mem_buf(p.key_pem.data(), static_cast<int>(p.key_pem.size())),
                                               &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(kb.get(), nullptr, no_passphrase, nullptr),
                                                          &EVP_PKEY_free);
  if (!key)
    throw std::runtime_error(key_path + " holds no PEM private key (" + ssl_error() +
                             "; an encrypted key is not supported)");
  if (X509_check_private_key(cert.get(), key.get()) != 1)
    throw std::runtime_error("the TLS key " + key_path + " does not match the certificate " + cert_path);
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0)
    spdlog::warn("farmd: the TLS certificate {} has expired: clients will refuse it", cert_path);
  ERR_clear_error();
  return p;
}

}  // namespace farmd
