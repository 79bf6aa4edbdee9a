# DnsCache (both backings; the pinned one only as root) and the Resolver against a real DNS
# server on loopback (tests/support/dns_server.py, started by the test).
snisplice_unit_test(unit_dns_cache SOURCES ${CMAKE_CURRENT_LIST_DIR}/dns_cache_test.cpp
                    LIBS snisplice_resolver)
snisplice_unit_test(unit_resolver SOURCES ${CMAKE_CURRENT_LIST_DIR}/resolver_test.cpp
                    LIBS snisplice_resolver)
target_compile_definitions(unit_resolver PRIVATE
  SNISPLICE_DNS_SERVER_PY="${PROJECT_SOURCE_DIR}/tests/support/dns_server.py")
