# kshield-kubectl control plane (issue 6): daemon config, local tokens, control socket, kubeconfig
# import / generation, the daemon that wires the proxy to its credentials. Included from
# src/proxy/CMakeLists.txt; the binary is in src/cmd (kshield_kubectl_main.cc).

# No dependency on the proxy implementation (token_store.h only uses proxy.h's interface), so the
# fuzz target and the unit tests link this alone.
add_library(kshield_kubectl_core STATIC
  config.cc
  control.cc
  kubeconfig.cc
  token_store.cc
)
target_include_directories(kshield_kubectl_core PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(kshield_kubectl_core
  PUBLIC
    kshield_common
    kshield_crypto
    nlohmann_json::nlohmann_json
    absl::status
    absl::statusor
    absl::strings
    absl::synchronization
    absl::time
  PRIVATE
    kshield_url
    yaml-cpp
    OpenSSL::Crypto
    Threads::Threads
)

add_library(kshield_kubectl_daemon STATIC
  daemon.cc
  daemon_oidc.cc
)
target_link_libraries(kshield_kubectl_daemon
  PUBLIC
    kshield_kubectl_core
  PRIVATE
    kshield_https_client
    kshield_proxy
    kshield_x509
    kshield_tee
    OpenSSL::SSL
    OpenSSL::Crypto
    Boost::headers
    absl::strings
    absl::time
    Threads::Threads
)

kshield_test(kubectl_config_test SOURCES config_test.cc
  LIBS kshield_kubectl_core LABELS "kubectl;unit")
kshield_test(kubectl_token_store_test SOURCES token_store_test.cc
  LIBS kshield_kubectl_core LABELS "kubectl;unit")
kshield_test(kubectl_kubeconfig_test SOURCES kubeconfig_test.cc
  LIBS kshield_kubectl_core kshield_x509 kshield_test_support yaml-cpp LABELS "kubectl;unit")
kshield_test(kubectl_control_test SOURCES control_test.cc
  LIBS kshield_kubectl_core kshield_test_support LABELS "kubectl;unit")
add_dependencies(kubectl_control_test kshield-kubectl)

# The daemon integration tests need the test apiserver (tests/kubectl, defined after src/) and,
# for the relay test, kshield-relay: registered once the whole tree has been read.
function(kshield_kubectl_daemon_integration_tests dir)
  if(NOT TARGET kshield_test_apiserver)
    message(STATUS "kubectl daemon: kshield_test_apiserver not defined; "
                   "kubectl_daemon_integration_test left out")
    return()
  endif()
  kshield_test(kubectl_daemon_integration_test SOURCES ${dir}/daemon_integration_test.cc
    LIBS kshield_kubectl_daemon kshield_test_apiserver kshield_test_support kshield_x509
         nlohmann_json::nlohmann_json absl::strings absl::time OpenSSL::SSL
    LABELS "kubectl;integration")
  add_dependencies(kubectl_daemon_integration_test kshield-kubectl)
  # Relay mode runs kshield-relay's server in-process (its test fixture builds the whole PKI).
  if(TARGET kshield_relay AND TARGET kshield_relay_testing)
    target_link_libraries(kubectl_daemon_integration_test PRIVATE kshield_relay
      kshield_relay_testing)
    target_compile_definitions(kubectl_daemon_integration_test PRIVATE KSHIELD_HAVE_RELAY=1)
  else()
    message(STATUS "kubectl daemon: kshield-relay libraries not defined; relay tests skip")
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR}
  CALL kshield_kubectl_daemon_integration_tests "${PROJECT_SOURCE_DIR}/tests/kubectl_daemon")
