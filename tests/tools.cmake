# Operator tooling on a real etcd (issue 4 §3-§5): scan / rewrap / decrypt and the apiserver
# simulator, against a real etcd (EtcdServer) and a real kshield-kms (KmsInstance). Included from
# tests/CMakeLists.txt; skips with a reason without /usr/bin/etcd.
add_executable(tools_kshieldctl tools_ctl_main.cc)
target_link_libraries(tools_kshieldctl PRIVATE kshield_ctl_etcd absl::synchronization)
set_target_properties(tools_kshieldctl PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

add_executable(tools_bench tools_bench_main.cc)
target_link_libraries(tools_bench PRIVATE kshield_bench_apiserver CLI11::CLI11
  absl::synchronization)
set_target_properties(tools_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

kshield_test(tools_etcd_test SOURCES tools_etcd_test.cc
  LIBS kshield_tools kshield_etcd_test_support kshield_test_support kshield_crypto kshield_proto
       gRPC::grpc++ nlohmann_json::nlohmann_json absl::strings OpenSSL::Crypto
  LABELS "integration;tools")
add_dependencies(tools_etcd_test kshield-kms kshieldctl tools_kshieldctl tools_bench)

# backup / restore / offline decrypt / keyset retire (issue 4 §3, §5) through the real kshieldctl.
kshield_test(tools_backup_test SOURCES tools_backup_test.cc
  LIBS kshield_tools kshield_etcd_test_support kshield_test_support kshield_keys kshield_crypto
       kshield_proto gRPC::grpc++ nlohmann_json::nlohmann_json absl::strings
  LABELS "integration;tools")
add_dependencies(tools_backup_test kshield-kms kshieldctl)

# The backup CronJob manifest parses and has what it needs (no Kubernetes API server here:
# `kubectl create --dry-run=client` needs one for discovery).
add_test(NAME deploy_backup_cronjob
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy_cronjob_test.py
          ${PROJECT_SOURCE_DIR}/deploy/kubernetes/kshield-backup-cronjob.yaml)
set_tests_properties(deploy_backup_cronjob PROPERTIES LABELS "tools" SKIP_RETURN_CODE 77
  TIMEOUT 60)
