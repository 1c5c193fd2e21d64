# pkcs11 key provider tests (issue 3). Included from tests/CMakeLists.txt.
# Integration tests need softhsm2 (module + softhsm2-util) and opensc (pkcs11-tool); they skip
# with a reason when those are missing. Each test case writes its own SOFTHSM2_CONF.
add_library(kshield_pkcs11_test_support STATIC pkcs11_softhsm.cc)
target_link_libraries(kshield_pkcs11_test_support PUBLIC kshield_keys_pkcs11 kshield_test_support)

kshield_test(pkcs11_options_test SOURCES pkcs11_options_test.cc
  LIBS kshield_keys_pkcs11 LABELS "unit;providers")
kshield_test(pkcs11_provider_test SOURCES pkcs11_provider_test.cc
  LIBS kshield_pkcs11_test_support LABELS "integration;providers")
kshield_test(pkcs11_outage_test SOURCES pkcs11_outage_test.cc
  LIBS kshield_pkcs11_test_support LABELS "integration;providers")

# kshield-kms itself with provider: pkcs11 through a token outage and back.
kshield_test(kms_pkcs11_outage_test SOURCES kms_pkcs11_outage_test.cc
  LIBS kshield_pkcs11_test_support LABELS "integration;providers;kms")
add_dependencies(kms_pkcs11_outage_test kshield-kms)
