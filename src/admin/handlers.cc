#include "admin/handlers.h"

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "admin/http_server.h"
#include "metrics/registry.h"
#include "metrics/text_format.h"

namespace kshield::admin {

HttpHandler HealthHandler(std::function<absl::Status()> check) {
  return [check = std::move(check)](const std::string& /*target*/) {
    HttpResponse response;
    const absl::Status status = check ? check() : absl::OkStatus();
    if (status.ok()) {
      response.body = "ok\n";
    } else {
      response.status = 503;
      response.body = absl::StrCat("not ready: ", status.message(), "\n");
    }
    return response;
  };
}

HttpHandler MetricsHandler(const metrics::Registry& registry) {
  return [&registry](const std::string& /*target*/) {
    HttpResponse response;
    response.content_type = std::string(metrics::kTextContentType);
    response.body = registry.Render();
    return response;
  };
}

}  // namespace kshield::admin
