#pragma once
#include <string>
namespace kshield::bench {
// Prints RSS of a kshield-kms holding `versions` KEK versions under load.
int RunRss(const std::string& kms_binary, int versions, double duration_s);
}  // namespace kshield::bench
