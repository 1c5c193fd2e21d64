#include "jwks_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield::testing {

absl::StatusOr<LoopbackServerPki> MakeLoopbackServerPki(const std::string& name) {
  LoopbackServerPki out;
  KSH_ASSIGN_OR_RETURN(out.ca, crypto::MakeSelfSignedCa({.common_name = name + " test CA"}));
  KSH_ASSIGN_OR_RETURN(crypto::KeyPair kp, crypto::GenerateEcP256Key());
  KSH_ASSIGN_OR_RETURN(
      out.cert_pem, crypto::IssueCertificate(
                        out.ca, kp.public_key_pem,
                        {.common_name = name, .ip_addresses = {"127.0.0.1"}, .server_auth = true}));
  out.key_pem = std::move(kp.private_key_pem);
  return out;
}

class JwksServer::Impl {
 public:
  ~Impl() { Stop(); }

  absl::Status Init(const JwksServerOptions& o) {
    signal(SIGPIPE, SIG_IGN);
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (ctx_ == nullptr) return absl::InternalError("SSL_CTX_new");
    BIO* b = BIO_new_mem_buf(o.cert_pem.data(), static_cast<int>(o.cert_pem.size()));
    X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(o.key_pem.UnsafeView().data(), static_cast<int>(o.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    const bool ok = cert != nullptr && key != nullptr && SSL_CTX_use_certificate(ctx_, cert) == 1 &&
                    SSL_CTX_use_PrivateKey(ctx_, key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (!ok) return absl::InvalidArgumentError("JwksServer: unusable certificate or key");

    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::UnavailableError("socket");
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(o.port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd_, 16) != 0) {
      return absl::UnavailableError(absl::StrCat("JwksServer: cannot listen on port ", o.port));
    }
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
  }

  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  int status_ = 503;
  std::string body_ = "{\"error\":\"nothing served yet\"}";
  std::string content_type_ = "application/json";
  std::chrono::milliseconds delay_{0};
  std::atomic<int> requests_{0};
  std::vector<std::string> heads_;

 private:
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

  void Loop() {
    while (!stopped()) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{5, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) Answer(ssl);
      ERR_clear_error();
      SSL_free(ssl);
      close(c);
    }
  }

  void Answer(SSL* ssl) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos && in.size() < 16384) {
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    requests_.fetch_add(1);
    std::string response;
    {
      std::unique_lock<std::mutex> lock(mu_);
      heads_.push_back(in.substr(0, in.find("\r\n\r\n")));
      if (delay_.count() > 0) {
        cv_.wait_for(lock, delay_, [this] { return stopped_; });
        if (stopped_) return;
      }
      response = absl::StrCat("HTTP/1.1 ", status_, " X\r\n");
      if (!content_type_.empty())
        absl::StrAppend(&response, "Content-Type: ", content_type_, "\r\n");
      absl::StrAppend(&response, "Content-Length: ", body_.size(), "\r\nConnection: close\r\n\r\n",
                      body_);
    }
    size_t off = 0;
    while (off < response.size()) {
      const int n = SSL_write(ssl, response.data() + off, static_cast<int>(response.size() - off));
      if (n <= 0) return;  // the client stopped reading (e.g. at its body limit)
      off += static_cast<size_t>(n);
    }
    SSL_shutdown(ssl);
  }

  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  std::thread thread_;
};

JwksServer::JwksServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JwksServer::~JwksServer() { Stop(); }

absl::StatusOr<std::unique_ptr<JwksServer>> JwksServer::Start(JwksServerOptions options) {
  auto impl = std::make_unique<Impl>();
  KSH_RETURN_IF_ERROR(impl->Init(options));
  return std::unique_ptr<JwksServer>(new JwksServer(std::move(impl)));
}

uint16_t JwksServer::port() const { return impl_->port_; }
std::string JwksServer::url() const { return absl::StrCat("https://127.0.0.1:", port(), "/keys"); }

void JwksServer::Serve(int status, std::string body, std::string content_type) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->status_ = status;
  impl_->body_ = std::move(body);
  impl_->content_type_ = std::move(content_type);
}

void JwksServer::SetDelay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->delay_ = delay;
}

int JwksServer::requests() const { return impl_->requests_.load(); }

std::vector<std::string> JwksServer::heads() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  return impl_->heads_;
}

void JwksServer::Stop() { impl_->Stop(); }

}  // namespace kshield::testing
