#include "tee/quote/quote.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/sha256.h"
#include "tee/quote/quote_test_util.h"

namespace kshield::tee::quote {
namespace {

using testing::ReadTestFile;

template <size_t N>
std::string Hex(const std::array<uint8_t, N>& a) {
  return crypto::HexEncode(std::string_view(reinterpret_cast<const char*>(a.data()), N));
}

std::string Le16(uint16_t v) {
  return std::string{static_cast<char>(v), static_cast<char>(v >> 8)};
}
std::string Le32(uint32_t v) {
  return Le16(static_cast<uint16_t>(v)) + Le16(static_cast<uint16_t>(v >> 16));
}

std::string Seq32(uint8_t first) {  // first, first+1, ..., 32 bytes
  std::string s;
  for (int i = 0; i < 32; ++i) s.push_back(static_cast<char>(first + i));
  return s;
}

TEST(ParseQuoteTest, MobilecoinSgxV3Fields) {
  const std::string bytes = ReadTestFile(testing::kMobilecoinQuote);
  ASSERT_EQ(bytes.size(), 4603u);
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->header.version, 3);
  EXPECT_EQ(q->header.att_key_type, 2);
  EXPECT_EQ(q->header.tee_type, 0u);
  EXPECT_EQ(q->header.qe_svn, 7);
  EXPECT_EQ(q->header.pce_svn, 12);
  EXPECT_EQ(Hex(q->header.qe_vendor_id), "939a7233f79c4ca9940a0db3957f0607");
  EXPECT_EQ(Hex(q->header.user_data), "d1ae7b91a5827a1d6418d44600cf1f5300000000");
  EXPECT_EQ(q->tee, TeeType::kSgx);
  EXPECT_EQ(q->body_type, kBodyTypeSgx);
  EXPECT_EQ(Hex(q->sgx.mr_enclave),
            "1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189");
  EXPECT_EQ(Hex(q->sgx.mr_signer),
            "d412a4f07ef83892a5915fb2ab584be31e186e5a4f95ab5f6950fd4eb8694d7b");
  EXPECT_EQ(q->sgx.isv_prod_id, 0);
  EXPECT_EQ(q->sgx.isv_svn, 0);
  EXPECT_EQ(q->sgx.config_svn, 0);
  EXPECT_EQ(q->sgx.misc_select, 0u);
  EXPECT_EQ(q->sgx.attributes_flags, 0x7u);
  EXPECT_TRUE(q->sgx.debug());
  EXPECT_EQ(q->sgx.attributes_xfrm, 0x7u);
  EXPECT_EQ(Hex(q->sgx.cpu_svn), "13130207ff8006000000000000000000");
  EXPECT_EQ(Hex(q->sgx.report_data), std::string(128, '0'));
  EXPECT_EQ(q->qe_auth_data, Seq32(0));
  EXPECT_EQ(q->cert_type, kCertTypePckChain);
  EXPECT_EQ(q->cert_data.size(), 3551u);
  EXPECT_EQ(q->cert_data.back(), '\n');
  EXPECT_EQ(Hex(q->qe_report_body.mr_enclave),
            "ae123cbfa96c268560dfd5dffe4854ce443de4e0fa51d281184c9428d7a340fb");
  EXPECT_EQ(Hex(q->qe_report_body.mr_signer),
            "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff");
  EXPECT_EQ(q->qe_report_body.isv_prod_id, 1);
  EXPECT_EQ(q->qe_report_body.isv_svn, 7);
  EXPECT_EQ(q->qe_report, bytes.substr(564, 384));
  EXPECT_EQ(q->signed_data, bytes.substr(0, 432));
  EXPECT_EQ(q->quote_size, 4603u);
  EXPECT_EQ(q->trailing_size, 0u);
}

TEST(ParseQuoteTest, DcapQvlSgxV3Fields) {
  const std::string bytes = ReadTestFile(testing::kSgxSampleQuote);
  ASSERT_EQ(bytes.size(), 4600u);
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->header.version, 3);
  EXPECT_EQ(q->header.qe_svn, 10);
  EXPECT_EQ(q->header.pce_svn, 15);
  EXPECT_EQ(Hex(q->header.user_data), "3987622ee6968a54977c8626ef47123500000000");
  EXPECT_EQ(Hex(q->sgx.mr_enclave),
            "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  EXPECT_EQ(Hex(q->sgx.mr_signer),
            "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
  EXPECT_EQ(q->sgx.isv_prod_id, 0);
  EXPECT_EQ(q->sgx.isv_svn, 0);
  EXPECT_EQ(q->sgx.attributes_flags, 0x5u);
  EXPECT_FALSE(q->sgx.debug());
  EXPECT_EQ(q->sgx.attributes_xfrm, 0xe7u);
  EXPECT_EQ(Hex(q->sgx.cpu_svn), "0b0b1a18ffff04000000000000000000");
  EXPECT_EQ(Hex(q->sgx.report_data), "48656c6c6f2c20776f726c6421" + std::string(102, '0'));
  EXPECT_EQ(q->qe_auth_data, Seq32(0));
  EXPECT_EQ(q->cert_type, kCertTypePckChain);
  EXPECT_EQ(q->cert_data.size(), 3548u);
  EXPECT_EQ(q->cert_data.back(), '\0');
  EXPECT_EQ(Hex(q->qe_report_body.mr_signer),
            "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff");
  EXPECT_EQ(q->qe_report_body.isv_prod_id, 1);
  EXPECT_EQ(q->qe_report_body.isv_svn, 10);
  EXPECT_EQ(q->quote_size, 4600u);
  EXPECT_EQ(q->trailing_size, 0u);
}

TEST(ParseQuoteTest, TdxV4FieldsAndTrailingPadding) {
  const std::string bytes = ReadTestFile(testing::kTdxSampleQuote);
  ASSERT_EQ(bytes.size(), 5006u);
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->header.version, 4);
  EXPECT_EQ(q->header.att_key_type, 2);
  EXPECT_EQ(q->header.tee_type, kTeeTypeTdx);
  EXPECT_EQ(Hex(q->header.qe_vendor_id), "939a7233f79c4ca9940a0db3957f0607");
  EXPECT_EQ(Hex(q->header.user_data), "889b7d6ff9df2405b240a830e73faf3d00000000");
  EXPECT_EQ(q->tee, TeeType::kTdx);
  EXPECT_EQ(q->body_type, kBodyTypeTd10);
  const TdReportBody& td = q->td;
  EXPECT_FALSE(td.is_td15);
  EXPECT_EQ(Hex(td.tee_tcb_svn), "06010300000000000000000000000000");
  EXPECT_EQ(Hex(td.mr_seam),
            "5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab58c7d5ecee41d7c436489d6c8e4f92f160b7c"
            "ad34207b00c1");
  EXPECT_EQ(Hex(td.td_attributes), "0000001000000000");
  EXPECT_FALSE(td.debug());
  EXPECT_EQ(Hex(td.xfam), "e702060000000000");
  EXPECT_EQ(Hex(td.mr_td),
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f2742"
            "8b2538873118b7");
  EXPECT_EQ(Hex(td.mr_config_id), std::string(96, '0'));
  EXPECT_EQ(Hex(td.mr_owner), std::string(96, '0'));
  EXPECT_EQ(Hex(td.mr_owner_config), std::string(96, '0'));
  EXPECT_EQ(Hex(td.rtmr[0]),
            "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a5"
            "40cf994b9bc9c0");
  EXPECT_EQ(Hex(td.rtmr[1]),
            "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b30"
            "93d54e579e9378");
  EXPECT_EQ(Hex(td.rtmr[2]),
            "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733"
            "642e01d48c3132");
  EXPECT_EQ(Hex(td.rtmr[3]), std::string(96, '0'));
  EXPECT_EQ(Hex(td.report_data),
            "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c16"
            "3cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20");
  EXPECT_EQ(q->qe_auth_data, Seq32(0));
  EXPECT_EQ(q->cert_type, kCertTypePckChain);
  EXPECT_EQ(q->cert_data.size(), 3678u);
  EXPECT_EQ(q->cert_data.back(), '\0');
  EXPECT_EQ(Hex(q->qe_report_body.mr_enclave),
            "e5a3a7b5d830c2953b98534c6c59a3a34fdc34e933f7f5898f0a85cf08846bca");
  EXPECT_EQ(Hex(q->qe_report_body.mr_signer),
            "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
  EXPECT_EQ(q->qe_report_body.isv_prod_id, 2);
  EXPECT_EQ(q->qe_report_body.isv_svn, 6);
  EXPECT_EQ(q->qe_report, bytes.substr(770, 384));
  EXPECT_EQ(q->signed_data, bytes.substr(0, 632));
  EXPECT_EQ(q->quote_size, 4936u);
  EXPECT_EQ(q->trailing_size, 70u);
}

TEST(ParseQuoteTest, TruncationAtEveryLengthFailsCleanly) {
  for (const char* name :
       {testing::kMobilecoinQuote, testing::kSgxSampleQuote, testing::kTdxSampleQuote}) {
    const std::string bytes = ReadTestFile(name);
    auto full = ParseQuote(bytes);
    ASSERT_TRUE(full.ok()) << name;
    for (size_t len = 0; len < bytes.size(); ++len) {
      auto q = ParseQuote(std::string_view(bytes).substr(0, len));
      if (len < full->quote_size) {
        ASSERT_FALSE(q.ok()) << name << " len " << len;
        EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_NE(q.status().message().find("quote truncated: "), absl::string_view::npos)
            << name << " len " << len << ": " << q.status();
      } else {
        // Cutting into the trailing padding leaves a complete quote.
        ASSERT_TRUE(q.ok()) << name << " len " << len << ": " << q.status();
        EXPECT_EQ(q->trailing_size, len - full->quote_size);
      }
    }
  }
}

TEST(ParseQuoteTest, TrailingBytesAreTolerated) {
  const std::string bytes = ReadTestFile(testing::kSgxSampleQuote) + std::string(100, '\xab');
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->quote_size, 4600u);
  EXPECT_EQ(q->trailing_size, 100u);
}

TEST(ParseQuoteTest, HeaderFieldsAreChecked) {
  const std::string good = ReadTestFile(testing::kSgxSampleQuote);
  struct Case {
    size_t offset;
    std::string value;
    std::string message;
  };
  const Case cases[] = {
      {0, Le16(2), "unsupported quote version 2"},
      {0, Le16(6), "unsupported quote version 6"},
      {2, Le16(3), "unsupported attestation key type 3"},
      {4, Le32(0x81), "header.tee_type must be 0 (SGX) in a v3 quote"},
      {4, Le32(0x7), "unknown header.tee_type 7"},
  };
  for (const Case& c : cases) {
    std::string bytes = good;
    bytes.replace(c.offset, c.value.size(), c.value);
    auto q = ParseQuote(bytes);
    ASSERT_FALSE(q.ok()) << c.message;
    EXPECT_NE(std::string(q.status().message()).find(c.message), std::string::npos) << q.status();
  }
}

TEST(ParseQuoteTest, LengthsAreBoundsChecked) {
  const std::string good = ReadTestFile(testing::kSgxSampleQuote);
  // signature_data_len larger than what is left.
  std::string bytes = good;
  bytes.replace(432, 4, Le32(0xffffffffu));
  auto q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("signature_data needs 4294967295 bytes"),
            std::string::npos)
      << q.status();
  // Certification data size beyond the signature data.
  bytes = good;
  const size_t cert_size_at = 436 + 64 + 64 + 384 + 64 + 2 + 32 + 2;
  bytes.replace(cert_size_at, 4, Le32(5000));
  q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("certification_data needs 5000 bytes"),
            std::string::npos)
      << q.status();
  // Signature data longer than its content: the extra bytes are refused (not padding).
  bytes = good;
  bytes.replace(432, 4, Le32(4164 + 3));
  bytes += "xyz";
  q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("3 bytes after the certification data"),
            std::string::npos)
      << q.status();
  // Oversized input.
  q = ParseQuote(std::string(kMaxQuoteSize + 1, '\0'));
  ASSERT_FALSE(q.ok());
}

TEST(ParseQuoteTest, V4RequiresQeReportCertificationData) {
  std::string bytes = ReadTestFile(testing::kTdxSampleQuote);
  bytes.replace(636 + 128, 2, Le16(5));
  auto q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("certification data type 5 is not supported"),
            std::string::npos)
      << q.status();
  // Inner data shorter than the outer size says: the leftover is refused.
  bytes = ReadTestFile(testing::kTdxSampleQuote);
  const size_t inner_size_at = 636 + 128 + 6 + 384 + 64 + 2 + 32 + 2;
  bytes.replace(inner_size_at, 4, Le32(3678 - 10));
  q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("10 bytes after the PCK certification data"),
            std::string::npos)
      << q.status();
}

// v5 quotes: the same content re-framed (the signature no longer matches; parsing does not care).
std::string TdxAsV5(bool td15) {
  const std::string v4 = ReadTestFile(testing::kTdxSampleQuote);
  std::string out = v4.substr(0, 48);
  out.replace(0, 2, Le16(5));
  out += Le16(td15 ? kBodyTypeTd15 : kBodyTypeTd10);
  out += Le32(td15 ? kTdReport15Size : kTdReport10Size);
  out += v4.substr(48, 584);
  if (td15) {
    out += std::string(16, '\x07');  // tee_tcb_svn2
    out += std::string(48, '\0');    // mr_service_td
  }
  out += v4.substr(632);
  return out;
}

TEST(ParseQuoteTest, V5TdReport10And15) {
  for (bool td15 : {false, true}) {
    auto q = ParseQuote(TdxAsV5(td15));
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(q->header.version, 5);
    EXPECT_EQ(q->tee, TeeType::kTdx);
    EXPECT_EQ(q->body_type, td15 ? kBodyTypeTd15 : kBodyTypeTd10);
    EXPECT_EQ(q->td.is_td15, td15);
    EXPECT_EQ(Hex(q->td.tee_tcb_svn), "06010300000000000000000000000000");
    EXPECT_EQ(q->signed_data.size(), 48 + 6 + (td15 ? kTdReport15Size : kTdReport10Size));
    if (td15) {
      EXPECT_EQ(Hex(q->td.tee_tcb_svn2), "07070707070707070707070707070707");
    }
    EXPECT_EQ(q->trailing_size, 70u);
    EXPECT_EQ(q->cert_data.size(), 3678u);
  }
}

TEST(ParseQuoteTest, V5SgxBody) {
  const std::string v3 = ReadTestFile(testing::kSgxSampleQuote);
  const std::string sig_data = v3.substr(436);
  std::string out = v3.substr(0, 48);
  out.replace(0, 2, Le16(5));
  out += Le16(kBodyTypeSgx) + Le32(kSgxReportBodySize) + v3.substr(48, 384);
  const std::string rest = sig_data.substr(128);  // QE report .. cert data
  out += Le32(static_cast<uint32_t>(128 + 6 + rest.size()));
  out += sig_data.substr(0, 128) + Le16(kCertTypeQeReportData) +
         Le32(static_cast<uint32_t>(rest.size())) + rest;
  auto q = ParseQuote(out);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tee, TeeType::kSgx);
  EXPECT_EQ(q->body_type, kBodyTypeSgx);
  EXPECT_EQ(Hex(q->sgx.mr_enclave),
            "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  EXPECT_EQ(q->qe_report_body.isv_svn, 10);
}

TEST(ParseQuoteTest, V5BodyDescriptorIsChecked) {
  std::string bytes = TdxAsV5(false);
  bytes.replace(50, 4, Le32(600));
  auto q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("v5 body.size 600 does not match body.type 2"),
            std::string::npos)
      << q.status();
  bytes = TdxAsV5(false);
  bytes.replace(48, 2, Le16(9));
  q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("unknown v5 body.type 9"), std::string::npos);
  bytes = TdxAsV5(false);
  bytes.replace(48, 6, Le16(kBodyTypeSgx) + Le32(kSgxReportBodySize));
  q = ParseQuote(bytes);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("does not match header.tee_type"),
            std::string::npos);
}

TEST(ParseSgxReportBodyTest, SizeIsExact) {
  EXPECT_FALSE(ParseSgxReportBody(std::string(383, '\0')).ok());
  EXPECT_FALSE(ParseSgxReportBody(std::string(385, '\0')).ok());
  auto b = ParseSgxReportBody(std::string(384, '\0'));
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->debug());
}

}  // namespace
}  // namespace kshield::tee::quote
