# TEE layer integration tests (issue 5): sealing across platform identities, `kshieldctl attest`.
kshield_test(tee_sealing_test SOURCES tee_sealing_test.cc
  LIBS kshield_test_support kshield_keys kshield_tee LABELS "integration;tee")
add_dependencies(tee_sealing_test kshield-kms)

kshield_test(tee_attest_cli_test SOURCES tee_attest_cli_test.cc
  LIBS kshield_test_support kshield_tee nlohmann_json::nlohmann_json LABELS "integration;tee")
add_dependencies(tee_attest_cli_test kshieldctl)

kshield_test(tee_ratls_grpc_test SOURCES tee_ratls_grpc_test.cc
  LIBS kshield_test_support kshield_tee_ratls_grpc kshield_proto LABELS "integration;tee")
