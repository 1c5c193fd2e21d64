# KMIP provider integration tests: a real PyKMIP server (python3-pykmip, run by /usr/bin/python3)
# per test, in a temp dir on a free loopback port. Tests skip visibly when PyKMIP is absent.
add_library(kshield_kmip_test_support STATIC kmip_server_fixture.cc)
target_include_directories(kshield_kmip_test_support PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(kshield_kmip_test_support PUBLIC kshield_test_support kshield_keys_kmip
  OpenSSL::SSL)

kshield_test(kmip_client_test SOURCES kmip_client_test.cc
  LIBS kshield_kmip_test_support kshield_keys_kmip absl::strings LABELS "integration;providers")
kshield_test(kmip_provider_test SOURCES kmip_provider_test.cc
  LIBS kshield_kmip_test_support kshield_keys_kmip absl::strings LABELS "integration;providers")

# kshield-kms itself with provider: kmip through an outage and back.
kshield_test(kms_kmip_outage_test SOURCES kms_kmip_outage_test.cc
  LIBS kshield_kmip_test_support LABELS "integration;providers;kms")
add_dependencies(kms_kmip_outage_test kshield-kms)
