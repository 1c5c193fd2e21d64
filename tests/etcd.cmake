# etcd client tests (issue 4 §2). Included from tests/CMakeLists.txt. They start a real etcd
# (Debian etcd-server, /usr/bin/etcd) on free loopback ports and skip with a reason without it.
add_library(kshield_etcd_test_support STATIC etcd_server_fixture.cc)
target_include_directories(kshield_etcd_test_support PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(kshield_etcd_test_support PUBLIC kshield_etcd kshield_test_support
  kshield_common absl::strings)

kshield_test(etcd_client_test SOURCES etcd_client_test.cc
  LIBS kshield_etcd_test_support kshield_etcd absl::strings LABELS "integration;tools")
