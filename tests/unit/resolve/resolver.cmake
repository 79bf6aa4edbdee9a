# DnsCache (both backings; the pinned one only as root) and the Resolver against a real DNS
# server on loopback (tests/support/dns_server.py, started by the test).
snisplice_unit_test(unit_dns_cache SOURCES ${CMAKE_CURRENT_LIST_DIR}/dns_cache_test.cpp
                    LIBS snisplice_resolver)
snisplice_unit_test(unit_resolver SOURCES ${CMAKE_CURRENT_LIST_DIR}/resolver_test.cpp
                    LIBS snisplice_resolver)
target_compile_definitions(unit_resolver PRIVATE
  SNISPLICE_DNS_SERVER_PY="${PROJECT_SOURCE_DIR}/tests/support/dns_server.py")

# The DNS server helper itself, as the daemon's end-to-end tests use it (python unittest).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME e2e_dns_server COMMAND ${Python3_EXECUTABLE} -m unittest -v test_dns_server
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/e2e/dns)
set_tests_properties(e2e_dns_server PROPERTIES LABELS e2e TIMEOUT 120
                     ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
