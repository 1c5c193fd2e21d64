#include "keys/kmip/kmip_messages.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "common/status.h"

namespace kshield::keys::kmip {
namespace {

// Requests and responses recorded from PyKMIP 0.10: its own client (ProxyKmipClient, KMIP 1.2)
// talking to its own server, which logs every encoding at logging_level DEBUG. Our requests
// must be byte-identical to the ones PyKMIP's client sends for the same operation.

// create(AES, 256, name='kshield-abc-1', usage [ENCRYPT, DECRYPT])
const char kCreateRequestHex[] =
    "42007801000001684200770100000038420069010000002042006a020000000400000001000000004200"
    "6b0200000004000000020000000042000d0200000004000000010000000042000f010000012042005c05"
    "000000040000000100000000420079010000010842005705000000040000000200000000420091010000"
    "00f0420008010000003042000a070000001743727970746f6772617068696320416c676f726974686d00"
    "42000b05000000040000000300000000420008010000003042000a070000001443727970746f67726170"
    "686963204c656e6774680000000042000b02000000040000010000000000420008010000003042000a07"
    "0000001843727970746f67726170686963205573616765204d61736b42000b02000000040000000c0000"
    "0000420008010000004042000a07000000044e616d650000000042000b0100000028420055070000000d"
    "6b736869656c642d6162632d3100000042005405000000040000000100000000";
const char kCreateResponseHex[] =
    "42007b01000000a042007a0100000048420069010000002042006a020000000400000001000000004200"
    "6b020000000400000002000000004200920900000008000000006b0a274842000d020000000400000001"
    "0000000042000f010000004842005c0500000004000000010000000042007f0500000004000000000000"
    "000042007c01000000204200570500000004000000020000000042009407000000013100000000000000";
// locate(attributes=[Name 'kshield-abc-1'])
const char kLocateRequestHex[] =
    "42007801000000a84200770100000038420069010000002042006a020000000400000001000000004200"
    "6b0200000004000000020000000042000d0200000004000000010000000042000f010000006042005c05"
    "0000000400000008000000004200790100000048420008010000004042000a07000000044e616d650000"
    "000042000b0100000028420055070000000d6b736869656c642d6162632d310000004200540500000004"
    "0000000100000000";
const char kLocateResponseHex[] =
    "42007b010000009042007a0100000048420069010000002042006a020000000400000001000000004200"
    "6b020000000400000002000000004200920900000008000000006b0a274842000d020000000400000001"
    "0000000042000f010000003842005c0500000004000000080000000042007f0500000004000000000000"
    "000042007c010000001042009407000000013100000000000000";
// revoke(CESSATION_OF_OPERATION, '1')
const char kRevokeRequestHex[] =
    "42007801000000884200770100000038420069010000002042006a020000000400000001000000004200"
    "6b0200000004000000020000000042000d0200000004000000010000000042000f010000004042005c05"
    "000000040000001300000000420079010000002842009407000000013100000000000000420081010000"
    "001042008205000000040000000600000000";
// get('1') — PyKMIP's client sends no Key Format Type; we ask for Raw explicitly.
const char kGetRequestWithoutFormatHex[] =
    "42007801000000704200770100000038420069010000002042006a020000000400000001000000004200"
    "6b0200000004000000020000000042000d0200000004000000010000000042000f010000002842005c05"
    "000000040000000a00000000420079010000001042009407000000013100000000000000";
const char kGetResponseHex[] =
    "42007b010000011042007a0100000048420069010000002042006a020000000400000001000000004200"
    "6b020000000400000002000000004200920900000008000000006b0a274842000d020000000400000001"
    "0000000042000f01000000b842005c05000000040000000a0000000042007f0500000004000000000000"
    "000042007c01000000904200570500000004000000020000000042009407000000013100000000000000"
    "42008f010000006842004001000000604200420500000004000000010000000042004501000000284200"
    "430800000020edb3b17f4f17cad39699812735438d6c9161a747e5c9c31bac81e50bd2c7990542002805"
    "00000004000000030000000042002a02000000040000010000000000";

std::string Bytes(const char* hex) { return absl::HexStringToBytes(hex); }
std::string Hex(std::string_view b) { return absl::BytesToHexString(AV(b)); }

TEST(KmipMessages, CreateRequestMatchesPyKmipClient) {
  auto wire = EncodeRequest(Operation::kCreate, CreateAes256Payload("kshield-abc-1"));
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(Hex(*wire), kCreateRequestHex);
}

TEST(KmipMessages, LocateRequestMatchesPyKmipClient) {
  auto wire = EncodeRequest(Operation::kLocate, LocateByNamePayload("kshield-abc-1"));
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(Hex(*wire), kLocateRequestHex);
}

TEST(KmipMessages, RevokeRequestMatchesPyKmipClient) {
  auto wire = EncodeRequest(Operation::kRevoke, RevokePayload("1"));
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(Hex(*wire), kRevokeRequestHex);
}

TEST(KmipMessages, GetRequestIsPyKmipsPlusRawFormat) {
  auto ours = EncodeRequest(Operation::kGet, GetPayload("1"));
  ASSERT_TRUE(ours.ok());
  auto decoded = DecodeTtlv(*ours);
  ASSERT_TRUE(decoded.ok());
  auto theirs = DecodeTtlv(Bytes(kGetRequestWithoutFormatHex));
  ASSERT_TRUE(theirs.ok());
  // Same envelope; our payload = theirs + Key Format Type Raw.
  const Item* payload = decoded->Find(tag::kBatchItem)->Find(tag::kRequestPayload);
  ASSERT_NE(payload, nullptr);
  ASSERT_EQ(payload->children().size(), 2u);
  EXPECT_EQ(payload->children()[1].tag(), tag::kKeyFormatType);
  EXPECT_EQ(payload->children()[1].number(), kKeyFormatTypeRaw);
  Item stripped = Item::Structure(tag::kRequestPayload, {payload->children()[0]});
  auto same = EncodeRequest(Operation::kGet, std::move(stripped));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(Hex(*same), kGetRequestWithoutFormatHex);
}

TEST(KmipMessages, ParsesPyKmipResponses) {
  const std::string create = Bytes(kCreateResponseHex);
  auto c = DecodeTtlv(create);
  ASSERT_TRUE(c.ok()) << c.status();
  auto cp = CheckResponse(*c, Operation::kCreate);
  ASSERT_TRUE(cp.ok()) << cp.status();
  auto uid = ParseUniqueIdentifier(*cp, Operation::kCreate);
  ASSERT_TRUE(uid.ok()) << uid.status();
  EXPECT_EQ(*uid, "1");

  const std::string locate = Bytes(kLocateResponseHex);
  auto l = DecodeTtlv(locate);
  ASSERT_TRUE(l.ok());
  auto lp = CheckResponse(*l, Operation::kLocate);
  ASSERT_TRUE(lp.ok()) << lp.status();
  auto uids = ParseLocate(*lp);
  ASSERT_TRUE(uids.ok());
  EXPECT_EQ(*uids, std::vector<std::string>{"1"});

  const std::string get = Bytes(kGetResponseHex);
  auto g = DecodeTtlv(get);
  ASSERT_TRUE(g.ok());
  auto gp = CheckResponse(*g, Operation::kGet);
  ASSERT_TRUE(gp.ok()) << gp.status();
  auto key = ParseGetSymmetricKey(*gp, "1", 32);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(Hex(key->UnsafeStringView()),
            "edb3b17f4f17cad39699812735438d6c9161a747e5c9c31bac81e50bd2c79905");
}

TEST(KmipMessages, ResponseMustAnswerTheOperationAsked) {
  const std::string create = Bytes(kCreateResponseHex);
  auto c = DecodeTtlv(create);
  ASSERT_TRUE(c.ok());
  auto wrong = CheckResponse(*c, Operation::kGet);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss) << wrong.status();
  // A request message is not a response.
  const std::string req = Bytes(kCreateRequestHex);
  auto r = DecodeTtlv(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(CheckResponse(*r, Operation::kCreate).status().code(), absl::StatusCode::kDataLoss);
}

TEST(KmipMessages, GetForAnotherObjectOrWrongKeyIsRefused) {
  const std::string get = Bytes(kGetResponseHex);
  auto g = DecodeTtlv(get);
  ASSERT_TRUE(g.ok());
  auto gp = CheckResponse(*g, Operation::kGet);
  ASSERT_TRUE(gp.ok());
  EXPECT_EQ(ParseGetSymmetricKey(*gp, "2", 32).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseGetSymmetricKey(*gp, "1", 16).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(ParseGetSymmetricKey(nullptr, "1", 32).ok());
}

Item Response(Operation op, Item batch_tail) {
  Item header = Item::Structure(
      tag::kResponseHeader,
      {Item::Structure(tag::kProtocolVersion, {Item::Integer(tag::kProtocolVersionMajor, 1),
                                               Item::Integer(tag::kProtocolVersionMinor, 2)}),
       Item::DateTime(tag::kTimeStamp, 1700000000), Item::Integer(tag::kBatchCount, 1)});
  Item batch = Item::Structure(tag::kBatchItem,
                               {Item::Enumeration(tag::kOperation, static_cast<uint32_t>(op))});
  for (const Item& c : batch_tail.children()) batch.Add(c);
  return Item::Structure(tag::kResponseMessage, {std::move(header), std::move(batch)});
}

TEST(KmipMessages, FailedResultBecomesStatusWithServerMessage) {
  Item r = Response(
      Operation::kGet,
      Item::Structure(
          0, {Item::Enumeration(tag::kResultStatus, 1), Item::Enumeration(tag::kResultReason, 1),
              Item::TextString(tag::kResultMessage, "Could not locate object: 7")}));
  auto s = CheckResponse(r, Operation::kGet);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(s.status().message()),
            "KMIP Get failed: Item Not Found: Could not locate object: 7");

  Item p =
      Response(Operation::kActivate,
               Item::Structure(0, {Item::Enumeration(tag::kResultStatus, 1),
                                   Item::Enumeration(tag::kResultReason, 0x0C),
                                   Item::TextString(tag::kResultMessage, "line1\nline2\x1b[31m")}));
  auto ps = CheckResponse(p, Operation::kActivate);
  EXPECT_EQ(ps.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::string(ps.status().message()),
            "KMIP Activate failed: Permission Denied: line1?line2?[31m");

  // PyKMIP's answer to a client certificate without clientAuth: no Operation echoed.
  Item a = Item::Structure(
      tag::kResponseMessage,
      {r.children()[0],
       Item::Structure(tag::kBatchItem, {Item::Enumeration(tag::kResultStatus, 1),
                                         Item::Enumeration(tag::kResultReason, 3),
                                         Item::TextString(tag::kResultMessage,
                                                          "Error verifying the client "
                                                          "certificate.")})});
  auto as = CheckResponse(a, Operation::kCreate);
  EXPECT_EQ(as.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(as.status().message()).find("Authentication Not Successful"),
            std::string::npos);
}

TEST(KmipMessages, EnvelopeChecks) {
  Item ok =
      Response(Operation::kQuery, Item::Structure(0, {Item::Enumeration(tag::kResultStatus, 0)}));
  auto s = CheckResponse(ok, Operation::kQuery);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, nullptr);  // no payload

  // Two batch items.
  Item two = ok;
  two = Item::Structure(tag::kResponseMessage,
                        {ok.children()[0], ok.children()[1], ok.children()[1]});
  EXPECT_EQ(CheckResponse(two, Operation::kQuery).status().code(), absl::StatusCode::kDataLoss);
  // Missing Result Status.
  Item none = Response(Operation::kQuery, Item::Structure(0));
  EXPECT_EQ(CheckResponse(none, Operation::kQuery).status().code(), absl::StatusCode::kDataLoss);
  // Result Status of the wrong type.
  Item typed =
      Response(Operation::kQuery, Item::Structure(0, {Item::Integer(tag::kResultStatus, 0)}));
  EXPECT_EQ(CheckResponse(typed, Operation::kQuery).status().code(), absl::StatusCode::kDataLoss);
}

TEST(KmipMessages, ReasonCodes) {
  EXPECT_EQ(ResultReasonToCode(0x01), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResultReasonToCode(0x03), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ResultReasonToCode(0x0B), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResultReasonToCode(0x0C), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ResultReasonToCode(0x100), absl::StatusCode::kInternal);
  EXPECT_EQ(ResultReasonToCode(0x80000001), absl::StatusCode::kUnknown);
}

TEST(KmipMessages, SanitizeServerText) {
  EXPECT_EQ(SanitizeServerText("plain"), "plain");
  EXPECT_EQ(SanitizeServerText(std::string("a\0b\xff", 4)), "a?b?");
  std::string longer(500, 'x');
  EXPECT_EQ(SanitizeServerText(longer).size(), 203u);
}

}  // namespace
}  // namespace kshield::keys::kmip
