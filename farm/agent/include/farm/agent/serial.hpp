#pragma once
// A board's serial console, read with boost::asio::serial_port on a thread
// of its own for the duration of a job (boot messages, panics, the output
// of a hung board that ssh cannot show).
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <utility>  // Boost 1.74 asio needs it in C++20 (std::exchange)
#include <boost/asio.hpp>

namespace farm::agent {

class SerialConsole {
 public:
  SerialConsole(std::string device, unsigned baud, std::function<void(std::string_view)> on_data);
  ~SerialConsole();
  bool start(std::string* error);
  void stop();
  // Writes to the console (e.g. a newline to wake up a login prompt).
  bool write(std::string_view data);

 private:
  void read_more();
  std::string device_;
  unsigned baud_;
  std::function<void(std::string_view)> on_data_;
  boost::asio::io_context io_;
  boost::asio::serial_port port_;
  std::array<char, 4096> buf_{};
  std::thread th_;
};

}  // namespace farm::agent
