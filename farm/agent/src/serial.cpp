#include "farm/agent/serial.hpp"

namespace farm::agent {

namespace asio = boost::asio;

SerialConsole::SerialConsole(std::string device, unsigned baud, std::function<void(std::string_view)> on_data)
    : device_(std::move(device)), baud_(baud), on_data_(std::move(on_data)), port_(io_) {}

SerialConsole::~SerialConsole() { stop(); }

bool SerialConsole::start(std::string* error) {
  boost::system::error_code ec;
  port_.open(device_, ec);
  if (ec) {
    if (error) *error = device_ + ": " + ec.message();
    return false;
  }
  port_.set_option(asio::serial_port_base::baud_rate(baud_), ec);
  port_.set_option(asio::serial_port_base::character_size(8), ec);
  port_.set_option(asio::serial_port_base::parity(asio::serial_port_base::parity::none), ec);
  port_.set_option(asio::serial_port_base::stop_bits(asio::serial_port_base::stop_bits::one), ec);
  port_.set_option(asio::serial_port_base::flow_control(asio::serial_port_base::flow_control::none), ec);
  // (options may be refused by pseudo terminals; reading works regardless)
  read_more();
  th_ = std::thread([this] { io_.run(); });
  return true;
}

void SerialConsole::read_more() {
  port_.async_read_some(asio::buffer(buf_), [this](const boost::system::error_code& ec, size_t n) {
    if (n && on_data_) on_data_(std::string_view(buf_.data(), n));
    if (ec) return;  // closed, or the device went away
    read_more();
  });
}

bool SerialConsole::write(std::string_view data) {
  boost::system::error_code ec;
  asio::write(port_, asio::buffer(data.data(), data.size()), ec);
  return !ec;
}

void SerialConsole::stop() {
  if (!th_.joinable()) return;
  // Let the last bytes already in the tty buffer arrive, then close.
  auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(150));
  t->async_wait([this, t](const boost::system::error_code&) {
    boost::system::error_code ig;
    port_.cancel(ig);
    port_.close(ig);
  });
  th_.join();
}

}  // namespace farm::agent
