// Ready-made handlers for the standard admin routes.
//
//   std::map<std::string, HttpHandler> routes = {
//       {"/healthz", HealthHandler()},                                 // process is up
//       {"/readyz", HealthHandler([&] { return service.Ready(); })},   // can serve traffic
//       {"/metrics", MetricsHandler()},                                // Registry::Default()
//   };
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "admin/http_server.h"
#include "metrics/registry.h"

namespace kshield::admin {

// 200 "ok\n" when `check` returns OK (or is empty); otherwise 503 with "not ready: <message>\n".
// `check` runs on every probe, so it must be cheap and thread-safe, and its message must be fit
// for anyone who can reach the admin port (no secrets; our statuses never carry any).
HttpHandler HealthHandler(std::function<absl::Status()> check = nullptr);

// Serves registry.Render() as text/plain; version=0.0.4. The registry must outlive the server.
HttpHandler MetricsHandler(const metrics::Registry& registry = metrics::Registry::Default());

}  // namespace kshield::admin
