// Status helpers shared by every kshield library.
//
// We use absl::Status / absl::StatusOr everywhere (no exceptions across our code). The macros below
// keep call sites short:
//
//   KSH_RETURN_IF_ERROR(store.Write(keyset));
//   KSH_ASSIGN_OR_RETURN(auto aead, AesGcmAead::New(key));
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#include <string>
#include <string_view>

#define KSH_CONCAT_INNER_(a, b) a##b
#define KSH_CONCAT_(a, b) KSH_CONCAT_INNER_(a, b)

#define KSH_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::absl::Status ksh_status_ = (expr);          \
    if (!ksh_status_.ok()) return ksh_status_;    \
  } while (0)

#define KSH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

#define KSH_ASSIGN_OR_RETURN(lhs, expr) \
  KSH_ASSIGN_OR_RETURN_IMPL_(KSH_CONCAT_(ksh_statusor_, __LINE__), lhs, expr)

namespace kshield {

// Debian's abseil (20220623) has its own absl::string_view, distinct from std::string_view; our
// code uses std::string_view, so this bridges the two at absl call sites.
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// Prefixes a status message with context, keeping the code: "loading keyset: <original>".
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), std::string(context) + ": " + std::string(s.message()));
}

}  // namespace kshield
