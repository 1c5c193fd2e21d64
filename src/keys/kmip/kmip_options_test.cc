#include "keys/kmip/kmip_options.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "keys/kmip/kmip_provider.h"

namespace kshield::keys::kmip {
namespace {

constexpr char kFull[] = R"(
endpoint: kms.example.com:5696
ca_file: /etc/kshield/kmip/ca.pem
cert_file: /etc/kshield/kmip/client.pem
key_file: /etc/kshield/kmip/client.key
server_name: kms.internal
name_prefix: prod-kshield
timeout: 1500ms
)";

constexpr char kMinimal[] = R"(
endpoint: 10.0.0.5:5696
ca_file: ca.pem
cert_file: c.pem
key_file: c.key
)";

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(KmipOptions, ParsesAllKeys) {
  auto o = ParseKmipOptionsYaml(kFull);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->endpoint, "kms.example.com:5696");
  EXPECT_EQ(o->ca_file, "/etc/kshield/kmip/ca.pem");
  EXPECT_EQ(o->cert_file, "/etc/kshield/kmip/client.pem");
  EXPECT_EQ(o->key_file, "/etc/kshield/kmip/client.key");
  EXPECT_EQ(o->server_name, "kms.internal");
  EXPECT_EQ(o->name_prefix, "prod-kshield");
  EXPECT_EQ(o->timeout, std::chrono::milliseconds(1500));
}

TEST(KmipOptions, Defaults) {
  auto o = ParseKmipOptionsYaml(kMinimal);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->name_prefix, "kshield");
  EXPECT_EQ(o->timeout, std::chrono::seconds(3));
  EXPECT_EQ(o->server_name, "");
}

TEST(KmipOptions, SectionOfALargerDocument) {
  YAML::Node doc = YAML::Load(std::string("provider: kmip\nkmip:\n") +
                              "  endpoint: 127.0.0.1:5696\n  ca_file: a\n  cert_file: b\n"
                              "  key_file: c\n  timeout: 2\n");
  auto o = ParseKmipOptionsNode(doc["kmip"]);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->timeout, std::chrono::seconds(2));
}

TEST(KmipOptions, UnknownKeyIsNamed) {
  auto o = ParseKmipOptionsYaml(std::string(kMinimal) + "pin: 1234\n");
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(o.status()).find("unknown key \"pin\""), std::string::npos) << o.status();
}

TEST(KmipOptions, RequiredKeys) {
  for (const char* key : {"endpoint", "ca_file", "cert_file", "key_file"}) {
    std::string yaml;
    for (const char* k : {"endpoint", "ca_file", "cert_file", "key_file"}) {
      if (std::string(k) != key) {
        yaml += std::string(k) + ": " + (std::string(k) == "endpoint" ? "h:1" : "x") + "\n";
      }
    }
    auto o = ParseKmipOptionsYaml(yaml);
    ASSERT_FALSE(o.ok()) << key;
    EXPECT_NE(Message(o.status()).find(key), std::string::npos) << o.status();
  }
}

TEST(KmipOptions, BadValues) {
  auto with = [](const std::string& line) {
    return ParseKmipOptionsYaml(std::string(kMinimal) + line + "\n");
  };
  EXPECT_FALSE(with("timeout: soon").ok());
  EXPECT_FALSE(with("timeout: -3s").ok());
  EXPECT_FALSE(with("timeout: 1ms").ok());  // below 10ms
  EXPECT_FALSE(with("timeout: 11m").ok());  // above 10m
  EXPECT_FALSE(with("name_prefix: \"a b\"").ok());
  EXPECT_FALSE(with("name_prefix: \"\"").ok());
  EXPECT_FALSE(with("server_name: [a, b]").ok());
  EXPECT_FALSE(ParseKmipOptionsYaml("endpoint: [").ok());  // not YAML
  EXPECT_FALSE(ParseKmipOptionsYaml("- a\n- b\n").ok());   // not a mapping
  EXPECT_FALSE(ParseKmipOptionsYaml("").ok());
}

TEST(KmipOptions, Endpoints) {
  auto hp = ParseEndpoint("kms.example.com:5696");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "kms.example.com");
  EXPECT_EQ(hp->port, 5696);
  hp = ParseEndpoint("[::1]:15696");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 15696);
  for (const char* bad : {"kms.example.com", "kms:0", "kms:65536", "kms:", ":5696", "::1:5696",
                          "[::1]5696", "[::1", "kms:+5", "kms:abc"}) {
    EXPECT_FALSE(ParseEndpoint(bad).ok()) << bad;
  }
}

TEST(KmipOptions, Durations) {
  EXPECT_EQ(*ParseKmipDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseKmipDuration("3s"), std::chrono::seconds(3));
  EXPECT_EQ(*ParseKmipDuration("2m"), std::chrono::minutes(2));
  EXPECT_EQ(*ParseKmipDuration("7"), std::chrono::seconds(7));
  EXPECT_FALSE(ParseKmipDuration("").ok());
  EXPECT_FALSE(ParseKmipDuration("ms").ok());
  EXPECT_FALSE(ParseKmipDuration("1.5s").ok());
  EXPECT_FALSE(ParseKmipDuration("99999999999999999999s").ok());
}

TEST(KmipOptions, ProviderRefusesMissingTlsFiles) {
  auto o = ParseKmipOptionsYaml(kMinimal);
  ASSERT_TRUE(o.ok());
  o->ca_file = "/nonexistent/ca.pem";
  auto p = NewKmipProvider(*o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(Message(p.status()).find("ca_file /nonexistent/ca.pem"), std::string::npos)
      << p.status();
}

}  // namespace
}  // namespace kshield::keys::kmip
