// Kubeconfig import: one valid kubeconfig, mutated one field at a time; file references; base64;
// selection of contexts; and the generated kubeconfig (no secret, accepted by the real kubectl).
#include "proxy/kubeconfig.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/x509.h"
#include "support/process.h"

namespace kshield::kubectl {
namespace {

struct Material {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;  // test-only plain copy
};

const Material& TestMaterial() {
  static const Material* m = [] {
    auto* out = new Material;
    absl::StatusOr<crypto::CertificateAuthority> ca =
        crypto::MakeSelfSignedCa({.common_name = "test-cluster-ca"});
    if (!ca.ok()) abort();
    absl::StatusOr<crypto::KeyPair> kp = crypto::GenerateEcP256Key();
    if (!kp.ok()) abort();
    absl::StatusOr<std::string> cert = crypto::IssueCertificate(
        *ca, kp->public_key_pem,
        {.common_name = "alice", .organizations = {"dev"}, .client_auth = true});
    if (!cert.ok()) abort();
    out->ca_pem = ca->certificate_pem;
    out->cert_pem = *cert;
    out->key_pem = std::string(kp->private_key_pem.UnsafeStringView());
    return out;
  }();
  return *m;
}

std::string B64(std::string_view s) { return EncodeBase64(s); }

// Two contexts: "east" (client certificate, all inline) and "west" (token).
std::string ValidKubeconfig() {
  const Material& m = TestMaterial();
  return absl::StrCat(R"(apiVersion: v1
kind: Config
current-context: east
clusters:
- name: east-cluster
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: )",
                      B64(m.ca_pem), R"(
    tls-server-name: kubernetes
- name: west-cluster
  cluster:
    server: https://10.0.0.2:6443
    certificate-authority-data: )",
                      B64(m.ca_pem), R"(
users:
- name: alice
  user:
    client-certificate-data: )",
                      B64(m.cert_pem), R"(
    client-key-data: )",
                      B64(m.key_pem), R"(
- name: bot
  user:
    token: s3cr3t-token-value
contexts:
- name: east
  context:
    cluster: east-cluster
    user: alice
    namespace: default
- name: west
  context:
    cluster: west-cluster
    user: bot
)");
}

std::string Replace(std::string s, std::string_view from, std::string_view to) {
  const size_t pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

const KubeconfigContext* Ctx(const ParsedKubeconfig& kc, std::string_view name) {
  for (const KubeconfigContext& c : kc.contexts) {
    if (c.context == name) return &c;
  }
  return nullptr;
}

TEST(KubeconfigImportTest, ValidKubeconfig) {
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(ValidKubeconfig(), {});
  ASSERT_TRUE(kc.ok()) << kc.status();
  EXPECT_EQ(kc->current_context, "east");
  ASSERT_EQ(kc->contexts.size(), 2u);
  const KubeconfigContext* east = Ctx(*kc, "east");
  ASSERT_NE(east, nullptr);
  EXPECT_TRUE(east->unusable.empty()) << east->unusable;
  EXPECT_EQ(east->cluster, "east-cluster");
  EXPECT_EQ(east->user, "alice");
  EXPECT_EQ(east->server, "https://10.0.0.1:6443");
  EXPECT_EQ(east->ca_pem, TestMaterial().ca_pem);
  EXPECT_EQ(east->tls_server_name, "kubernetes");
  EXPECT_EQ(east->client_cert_pem, TestMaterial().cert_pem);
  EXPECT_EQ(std::string(east->client_key_pem.UnsafeStringView()), TestMaterial().key_pem);
  EXPECT_TRUE(east->token.empty());
  const KubeconfigContext* west = Ctx(*kc, "west");
  ASSERT_NE(west, nullptr);
  EXPECT_TRUE(west->unusable.empty()) << west->unusable;
  EXPECT_EQ(std::string(west->token.UnsafeStringView()), "s3cr3t-token-value");
  EXPECT_TRUE(west->client_cert_pem.empty());
  EXPECT_TRUE(kc->referenced_files.empty());
}

// Whole-file refusals: the structure is wrong.
struct StructMutation {
  const char* from;
  const char* to;
  const char* error;
};
class KubeconfigStructureTest : public ::testing::TestWithParam<StructMutation> {};

TEST_P(KubeconfigStructureTest, WholeFileRefused) {
  absl::StatusOr<ParsedKubeconfig> kc =
      ParseKubeconfig(Replace(ValidKubeconfig(), GetParam().from, GetParam().to), {});
  ASSERT_FALSE(kc.ok()) << GetParam().error;
  EXPECT_EQ(kc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(kc.status().message()).find(GetParam().error), std::string::npos)
      << kc.status();
  // No secret in the error text.
  EXPECT_EQ(std::string(kc.status().message()).find("s3cr3t"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    OneFieldAtATime, KubeconfigStructureTest,
    ::testing::Values(
        StructMutation{"kind: Config", "kind: Pod", "kind is \"Pod\""},
        StructMutation{"- name: east-cluster\n", "- nam: east-cluster\n",
                       "clusters[0]: \"name\" is required"},
        StructMutation{"- name: west-cluster", "- name: east-cluster", "duplicate name"},
        StructMutation{"- name: bot", "- name: alice", "duplicate name \"alice\""},
        StructMutation{"  cluster:\n    server: https://10.0.0.1", "  clustr:\n    server: https://10.0.0.1",
                       "\"cluster\" must be a mapping"},
        StructMutation{"    cluster: east-cluster\n", "",
                       "contexts[east].context: \"cluster\" is required"},
        StructMutation{"    user: bot\n", "    user: [bot]\n", "user: must be a string"},
        StructMutation{"clusters:\n", "clusters: 5\nx:\n", "clusters: must be a list"},
        StructMutation{"contexts:\n- name: east", "contexts:\n- 7\n- name: east",
                       "contexts[0]: must be a mapping"},
        StructMutation{"apiVersion: v1\n", "apiVersion: v1\n: [\n", "not valid YAML"}));

TEST(KubeconfigImportTest, NotAMappingOrNoContexts) {
  EXPECT_FALSE(ParseKubeconfig("", {}).ok());
  EXPECT_FALSE(ParseKubeconfig("- a\n- b\n", {}).ok());
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig("apiVersion: v1\nkind: Config\n", {});
  ASSERT_FALSE(kc.ok());
  EXPECT_NE(std::string(kc.status().message()).find("no contexts"), std::string::npos);
  EXPECT_FALSE(ParseKubeconfig(std::string(kMaxKubeconfigBytes + 1, ' '), {}).ok());
}

// Per-entry refusals: only the contexts using the entry become unusable.
struct EntryMutation {
  const char* from;
  const char* to;
  const char* context;  // the context that becomes unusable
  const char* reason;
};
class KubeconfigEntryTest : public ::testing::TestWithParam<EntryMutation> {};

TEST_P(KubeconfigEntryTest, ContextUnusableWithReason) {
  const EntryMutation& m = GetParam();
  absl::StatusOr<ParsedKubeconfig> kc =
      ParseKubeconfig(Replace(ValidKubeconfig(), m.from, m.to), {});
  ASSERT_TRUE(kc.ok()) << kc.status();
  for (const KubeconfigContext& c : kc->contexts) {
    if (c.context == m.context) {
      EXPECT_NE(c.unusable.find(m.reason), std::string::npos) << c.unusable;
      EXPECT_TRUE(c.client_key_pem.empty());
      EXPECT_TRUE(c.token.empty());
      EXPECT_EQ(c.unusable.find("s3cr3t"), std::string::npos);
      EXPECT_EQ(c.unusable.find("PRIVATE KEY"), std::string::npos);
    } else {
      EXPECT_TRUE(c.unusable.empty()) << c.context << ": " << c.unusable;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OneFieldAtATime, KubeconfigEntryTest,
    ::testing::Values(
        EntryMutation{"server: https://10.0.0.1:6443", "server: http://10.0.0.1:6443", "east",
                      "only https:// servers"},
        EntryMutation{"    server: https://10.0.0.1:6443\n", "", "east", "\"server\" is required"},
        EntryMutation{"    tls-server-name: kubernetes",
                      "    tls-server-name: kubernetes\n    insecure-skip-tls-verify: true", "east",
                      "insecure-skip-tls-verify is not supported"},
        EntryMutation{"    tls-server-name: kubernetes",
                      "    tls-server-name: kubernetes\n    proxy-url: http://proxy:3128", "east",
                      "proxy-url is not supported"},
        EntryMutation{"    tls-server-name: kubernetes",
                      "    tls-server-name: kubernetes\n    certificate-authority: /x/ca.pem",
                      "east", "both certificate-authority-data and certificate-authority"},
        EntryMutation{"    certificate-authority-data: ", "    certificate-authority-data: $$",
                      "east", "base64: invalid character"},
        EntryMutation{"    client-certificate-data: ", "    client-certificate-data: QUJDR\n    x: ", "east",
                      "client-certificate-data: base64: truncated"},
        EntryMutation{"    client-key-data: ", "    client-key-data: ==", "east",
                      "client-key-data: base64"},
        EntryMutation{"    client-key-data: ", "    client-key-data: QUJD\n    x: ", "east",
                      "client-key is not a PEM private key"},
        EntryMutation{"    client-certificate-data: ", "    client-certificate-data: QUJD\n    x: ",
                      "east", "client-certificate is not a PEM certificate"},
        EntryMutation{"    client-key-data: ", "    xclient-key-data: ", "east",
                      "client-certificate without client-key"},
        EntryMutation{"    token: s3cr3t-token-value", "    token: s3cr3t-token-value\n    tokenFile: /t",
                      "west", "both token and tokenFile"},
        EntryMutation{"    token: s3cr3t-token-value", "    token: \"s3cr3t token\"", "west",
                      "token has characters not allowed"},
        EntryMutation{"    token: s3cr3t-token-value", "    token: \"\"", "west",
                      "no client certificate and no token"},
        EntryMutation{"    token: s3cr3t-token-value",
                      "    exec:\n      command: gke-gcloud-auth-plugin", "west",
                      "uses an exec plugin"},
        EntryMutation{"    token: s3cr3t-token-value",
                      "    auth-provider:\n      name: oidc", "west", "auth-provider"},
        EntryMutation{"    token: s3cr3t-token-value",
                      "    username: admin\n    password: s3cr3t", "west", "basic authentication"},
        EntryMutation{"    token: s3cr3t-token-value", "    token: s3cr3t-token-value\n    as: root",
                      "west", "impersonation"},
        EntryMutation{"    cluster: west-cluster", "    cluster: gone", "west",
                      "cluster \"gone\" is not in the kubeconfig"},
        EntryMutation{"    user: bot", "    user: ghost", "west",
                      "user \"ghost\" is not in the kubeconfig"},
        EntryMutation{"    client-key-data: ",
                      "    token: t\n    client-key-data: ", "east",
                      "both a client certificate and a token"}));

TEST(KubeconfigImportTest, DeepNestingIsAnErrorNotACrash) {
  for (const std::string& deep :
       {"clusters: " + std::string(100000, '['), "users: " + [] {
          std::string s;
          for (int i = 0; i < 20000; ++i) s += "{a: ";
          return s;
        }()}) {
    absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(deep, {});
    ASSERT_FALSE(kc.ok());
    EXPECT_EQ(kc.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(KubeconfigImportTest, FileReferencesResolveRelativeToTheKubeconfig) {
  testing::TempDir dir;
  const Material& m = TestMaterial();
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("ca.pem"), m.ca_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("alice.crt"), m.cert_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("alice.key"), m.key_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("bot.token"), "file-token\n").ok());
  const std::string yaml = absl::StrCat(R"(
clusters:
- name: c
  cluster:
    server: https://h:6443
    certificate-authority: ca.pem
users:
- name: alice
  user:
    client-certificate: )",
                                        dir.Sub("alice.crt"), R"(
    client-key: alice.key
- name: bot
  user:
    tokenFile: bot.token
contexts:
- {name: a, context: {cluster: c, user: alice}}
- {name: b, context: {cluster: c, user: bot}}
)");
  ImportOptions opts;
  opts.base_dir = dir.path();
  opts.read_file = [](const std::string& p) { return ReadFileBounded(p, 1 << 20); };
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(yaml, opts);
  ASSERT_TRUE(kc.ok()) << kc.status();
  const KubeconfigContext* a = Ctx(*kc, "a");
  const KubeconfigContext* b = Ctx(*kc, "b");
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->unusable.empty()) << a->unusable;
  EXPECT_EQ(a->ca_pem, m.ca_pem);
  EXPECT_EQ(a->client_cert_pem, m.cert_pem);
  EXPECT_EQ(std::string(a->client_key_pem.UnsafeStringView()), m.key_pem);
  EXPECT_EQ(std::string(b->token.UnsafeStringView()), "file-token");
  std::vector<std::string> expected = {dir.Sub("ca.pem"), dir.Sub("alice.crt"),
                                       dir.Sub("alice.key"), dir.Sub("bot.token")};
  EXPECT_EQ(kc->referenced_files, expected);

  // A missing file makes its context unusable, naming the file.
  ASSERT_EQ(unlink(dir.Sub("alice.key").c_str()), 0);
  kc = ParseKubeconfig(yaml, opts);
  ASSERT_TRUE(kc.ok()) << kc.status();
  EXPECT_NE(Ctx(*kc, "a")->unusable.find(dir.Sub("alice.key")), std::string::npos)
      << Ctx(*kc, "a")->unusable;
  EXPECT_TRUE(Ctx(*kc, "b")->unusable.empty());

  // Without a reader, file references are refused.
  kc = ParseKubeconfig(yaml, {});
  ASSERT_TRUE(kc.ok());
  EXPECT_NE(Ctx(*kc, "b")->unusable.find("file references are not allowed"), std::string::npos);
}

TEST(KubeconfigImportTest, Base64) {
  EXPECT_EQ(*DecodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*DecodeBase64("aGVsbG8"), "hello");            // padding optional
  EXPECT_EQ(*DecodeBase64("aGVs\nbG8=\r\n"), "hello");     // line breaks ignored
  EXPECT_EQ(*DecodeBase64("AAEC"), std::string("\0\1\2", 3));
  EXPECT_FALSE(DecodeBase64("").ok());
  EXPECT_FALSE(DecodeBase64("a").ok());
  EXPECT_FALSE(DecodeBase64("aGVsbG8===").ok());
  EXPECT_FALSE(DecodeBase64("aG=VsbG8").ok());
  EXPECT_FALSE(DecodeBase64("aGVsbG9=").ok());  // non-zero trailing bits
  EXPECT_FALSE(DecodeBase64("aGVs*G8=").ok());
  EXPECT_FALSE(DecodeBase64("aGVs-G8=").ok());  // base64url alphabet is not accepted here
  absl::StatusOr<SecretBytes> s = DecodeBase64Secret("c2VjcmV0");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->UnsafeStringView(), "secret");
  for (std::string v : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    absl::StatusOr<std::string> rt = DecodeBase64(EncodeBase64(v));
    if (v.empty()) {
      EXPECT_FALSE(rt.ok());
    } else {
      ASSERT_TRUE(rt.ok()) << v;
      EXPECT_EQ(*rt, v);
    }
  }
  EXPECT_EQ(EncodeBase64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(EncodeBase64("fo"), "Zm8=");
}

TEST(KubeconfigSelectTest, ByContextOrClusterName) {
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(ValidKubeconfig(), {});
  ASSERT_TRUE(kc.ok());
  std::vector<std::string> notes;
  absl::StatusOr<std::vector<ImportTarget>> t = SelectImports(*kc, {"east"}, {}, &notes);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ((*t)[0].daemon_cluster, "east");
  EXPECT_EQ(kc->contexts[(*t)[0].context_index].context, "east");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("\"west\" skipped"), std::string::npos);

  t = SelectImports(*kc, {"west-cluster"}, {}, nullptr);  // by the kubeconfig cluster name
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(kc->contexts[(*t)[0].context_index].context, "west");

  t = SelectImports(*kc, {"lab"}, {}, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find("--cluster-map"), std::string::npos);
}

TEST(KubeconfigSelectTest, ExplicitMap) {
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(ValidKubeconfig(), {});
  ASSERT_TRUE(kc.ok());
  absl::StatusOr<std::vector<ImportTarget>> t =
      SelectImports(*kc, {"lab", "lab2"}, {{"west", "lab"}, {"east", "lab2"}}, nullptr);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 2u);
  std::map<std::string, std::string> got;
  for (const ImportTarget& x : *t) got[x.daemon_cluster] = kc->contexts[x.context_index].context;
  EXPECT_EQ(got["lab"], "west");
  EXPECT_EQ(got["lab2"], "east");
  EXPECT_FALSE(SelectImports(*kc, {"lab"}, {{"nope", "lab"}}, nullptr).ok());
  EXPECT_FALSE(SelectImports(*kc, {"lab"}, {{"west", "other"}}, nullptr).ok());
  EXPECT_FALSE(SelectImports(*kc, {"lab"}, {{"west", "lab"}, {"east", "lab"}}, nullptr).ok());
}

TEST(KubeconfigSelectTest, UnusableSelectedContextIsAnError) {
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(
      Replace(ValidKubeconfig(), "    token: s3cr3t-token-value", "    exec: {command: x}"), {});
  ASSERT_TRUE(kc.ok());
  absl::StatusOr<std::vector<ImportTarget>> t = SelectImports(*kc, {"west"}, {}, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find("exec plugin"), std::string::npos);
  // The usable one still imports.
  EXPECT_TRUE(SelectImports(*kc, {"east"}, {}, nullptr).ok());
}

GeneratedKubeconfigOptions GenOptions() {
  GeneratedKubeconfigOptions o;
  o.clusters = {"prod", "lab"};
  o.port = 16443;
  o.local_ca_pem = TestMaterial().ca_pem;
  o.exec_command = "/usr/local/bin/kshield-kubectl";
  return o;
}

TEST(GeneratedKubeconfigTest, Shape) {
  const std::string text = GenerateKubeconfig(GenOptions());
  YAML::Node y = YAML::Load(text);
  EXPECT_EQ(y["kind"].as<std::string>(), "Config");
  EXPECT_EQ(y["current-context"].as<std::string>(), "prod");
  ASSERT_EQ(y["clusters"].size(), 2u);
  EXPECT_EQ(y["clusters"][1]["cluster"]["server"].as<std::string>(),
            "https://127.0.0.1:16443/clusters/lab");
  EXPECT_EQ(*DecodeBase64(y["clusters"][0]["cluster"]["certificate-authority-data"].as<std::string>()),
            TestMaterial().ca_pem);
  YAML::Node exec = y["users"][1]["user"]["exec"];
  EXPECT_EQ(exec["apiVersion"].as<std::string>(), "client.authentication.k8s.io/v1");
  EXPECT_EQ(exec["command"].as<std::string>(), "/usr/local/bin/kshield-kubectl");
  EXPECT_EQ(exec["interactiveMode"].as<std::string>(), "Never");
  EXPECT_FALSE(exec["provideClusterInfo"].as<bool>());
  std::vector<std::string> args = exec["args"].as<std::vector<std::string>>();
  EXPECT_EQ(args, (std::vector<std::string>{"credential", "--cluster", "lab"}));
  EXPECT_EQ(y["contexts"][1]["context"]["cluster"].as<std::string>(), "lab");
  EXPECT_EQ(y["contexts"][1]["context"]["user"].as<std::string>(), "kshield-lab");

  GeneratedKubeconfigOptions o = GenOptions();
  o.extra_args = {"--socket", "/run/x.sock"};
  o.local_ca_file = "/run/x.sock.ca.pem";
  o.current_context = "lab";
  YAML::Node y2 = YAML::Load(GenerateKubeconfig(o));
  EXPECT_EQ(y2["current-context"].as<std::string>(), "lab");
  EXPECT_EQ(y2["clusters"][0]["cluster"]["certificate-authority"].as<std::string>(),
            "/run/x.sock.ca.pem");
  EXPECT_FALSE(y2["clusters"][0]["cluster"]["certificate-authority-data"].IsDefined());
  EXPECT_EQ(y2["users"][0]["user"]["exec"]["args"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"credential", "--cluster", "prod", "--socket",
                                      "/run/x.sock"}));
}

TEST(GeneratedKubeconfigTest, HasNoSecret) {
  const std::string text = GenerateKubeconfig(GenOptions());
  for (const char* forbidden :
       {"PRIVATE KEY", "client-key", "client-certificate", "token", "password", "auth-provider"}) {
    EXPECT_EQ(text.find(forbidden), std::string::npos) << forbidden << "\n" << text;
  }
  // The only embedded material is the CA's public certificate.
  EXPECT_EQ(text.find(EncodeBase64(TestMaterial().key_pem).substr(0, 40)), std::string::npos);
}

TEST(GeneratedKubeconfigTest, RealKubectlAcceptsIt) {
  if (access("/usr/bin/kubectl", X_OK) != 0) GTEST_SKIP() << "kubectl is not installed";
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("kubeconfig"), GenerateKubeconfig(GenOptions())).ok());
  std::string out;
  int rc = testing::RunCommand(absl::StrCat("HOME=", dir.path(),
                                            " /usr/bin/kubectl config view --kubeconfig ",
                                            dir.Sub("kubeconfig"), " -o json"),
                               &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("https://127.0.0.1:16443/clusters/prod"), std::string::npos) << out;
  EXPECT_NE(out.find("\"interactiveMode\": \"Never\""), std::string::npos) << out;
  rc = testing::RunCommand(absl::StrCat("HOME=", dir.path(),
                                        " /usr/bin/kubectl config get-contexts --kubeconfig ",
                                        dir.Sub("kubeconfig"), " -o name"),
                           &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("prod"), std::string::npos);
  EXPECT_NE(out.find("lab"), std::string::npos);
}

}  // namespace
}  // namespace kshield::kubectl
