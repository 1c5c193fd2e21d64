// Strict JSON parsing for input from outside (JWT segments, JWKS documents, request bodies).
//
// nlohmann::json alone accepts duplicate object keys (the last one wins), which lets two readers
// of one document disagree; here a duplicate key anywhere is an error, as is nesting deeper than
// `max_depth` or invalid UTF-8. Nothing throws: every failure is InvalidArgument with a short
// reason that never quotes the input.
//
//   KSH_ASSIGN_OR_RETURN(nlohmann::json body, ParseStrictJson(request_body));
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kshield::relay {

absl::StatusOr<nlohmann::json> ParseStrictJson(std::string_view text, int max_depth = 16);

// nlohmann's dump() throws on invalid UTF-8; this replaces bad sequences instead.
std::string DumpJson(const nlohmann::json& value);

}  // namespace kshield::relay
