// Pieces of the Prometheus text exposition format 0.0.4 shared by the registry and its tests.
//
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
//
//   metric_name{label="value",...} 1.5\n
//
// Everything here is pure and thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kshield::metrics {

// The Content-Type a /metrics endpoint serves Render() output with.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// OK iff `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*. (Colons are legal but meant for recording rules;
// promtool's linter flags them, so our own metrics should not use them.)
[[nodiscard]] absl::Status ValidateMetricName(std::string_view name);

// OK iff `name` matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__" (reserved by
// Prometheus).
[[nodiscard]] absl::Status ValidateLabelName(std::string_view name);

// Formats a sample value (or a bucket bound) the way Prometheus parses it back exactly:
// "+Inf", "-Inf", "NaN"; integral values below 2^53 as plain integers ("42", never "4.2e+01");
// everything else as the shortest text that round-trips ("0.25", "1e+300").
std::string FormatValue(double value);

// Appends a label value with backslash, double quote and line feed escaped. Invalid UTF-8 (which a
// scraper would reject for the whole page) is replaced with U+FFFD, so a label value that came from
// a peer can never break the exposition.
void AppendEscapedLabelValue(std::string_view value, std::string* out);

// Appends HELP text with backslash and line feed escaped; invalid UTF-8 becomes U+FFFD.
void AppendEscapedHelp(std::string_view help, std::string* out);

}  // namespace kshield::metrics
