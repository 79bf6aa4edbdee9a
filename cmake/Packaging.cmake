# Debian package of the daemon: `cpack -G DEB` in a build dir (after building `snisplice`).
# Lays out what Debian and systemd expect: the binary in /usr/sbin, the unit in
# /lib/systemd/system (bookworm keeps units out of /usr/lib), sysusers.d and tmpfiles.d
# snippets, a conffile /etc/snisplice/snisplice.yaml, gzipped man pages and the doc files
# lintian asks for. Runtime dependencies come from dpkg-shlibdeps.

include(GNUInstallDirs)
set(snisplice_debian_dir ${PROJECT_SOURCE_DIR}/deploy/debian)
set(snisplice_packaging_dir ${PROJECT_BINARY_DIR}/packaging)
set(SNISPLICE_PACKAGE_MAINTAINER "snisplice developers <packaging@snisplice.example>"
    CACHE STRING "Maintainer field of the Debian package")
set(SNISPLICE_PACKAGE_RELEASE 1 CACHE STRING "Debian revision of the package")

# Installing does not build everything first (the test suite takes long on 2 cores): build
# the daemon, then install or package.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# Man pages and the changelog are gzipped at configure time, reproducibly (-n: no name or
# time stamp); a change to a source re-runs the configure step.
file(MAKE_DIRECTORY ${snisplice_packaging_dir})
function(snisplice_gzip source output)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${source})
  execute_process(COMMAND gzip -9nc ${source} OUTPUT_FILE ${output} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "gzip ${source} failed")
  endif()
endfunction()
snisplice_gzip(${PROJECT_SOURCE_DIR}/docs/man/snisplice.8 ${snisplice_packaging_dir}/snisplice.8.gz)
snisplice_gzip(${PROJECT_SOURCE_DIR}/docs/man/snisplice.yaml.5 ${snisplice_packaging_dir}/snisplice.yaml.5.gz)
snisplice_gzip(${snisplice_debian_dir}/changelog ${snisplice_packaging_dir}/changelog.Debian.gz)

# The changelog's newest entry names the package version: warn when it falls behind.
file(STRINGS ${snisplice_debian_dir}/changelog snisplice_changelog_head LIMIT_COUNT 1)
set(snisplice_deb_version ${PROJECT_VERSION}-${SNISPLICE_PACKAGE_RELEASE})
if(NOT snisplice_changelog_head MATCHES "^snisplice \\(${snisplice_deb_version}\\)")
  message(WARNING "deploy/debian/changelog does not start with version ${snisplice_deb_version}: add an entry")
endif()

set(snisplice_doc_dir ${CMAKE_INSTALL_DATAROOTDIR}/doc/snisplice)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/snisplice.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/snisplice.sysusers
        DESTINATION lib/sysusers.d RENAME snisplice.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/snisplice.tmpfiles
        DESTINATION lib/tmpfiles.d RENAME snisplice.conf)
install(FILES ${snisplice_debian_dir}/snisplice.yaml DESTINATION /etc/snisplice)
install(FILES ${snisplice_packaging_dir}/snisplice.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${snisplice_packaging_dir}/snisplice.yaml.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${snisplice_debian_dir}/copyright ${snisplice_packaging_dir}/changelog.Debian.gz
              ${PROJECT_SOURCE_DIR}/docs/operations.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
              ${PROJECT_SOURCE_DIR}/docs/allowlist.md
        DESTINATION ${snisplice_doc_dir})
# Built outside Debian's archive: there is no bug for the first upload to close.
install(FILES ${snisplice_debian_dir}/lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides RENAME snisplice)

file(WRITE ${snisplice_packaging_dir}/conffiles "/etc/snisplice/snisplice.yaml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME snisplice)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${SNISPLICE_PACKAGE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SNI-routing TCP proxy with an in-kernel splice")
set(CPACK_PACKAGE_DESCRIPTION
    "snisplice routes TLS and HTTP connections on the ClientHello's server
name or the Host header without terminating TLS, to backend pools or to the
name itself resolved through DNS, and joins client and backend inside the
kernel with an eBPF sockhash. An XDP allowlist drops unwanted sources before
the network stack. It runs as a systemd service, reloads on SIGHUP and
exports Prometheus metrics.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${SNISPLICE_PACKAGE_RELEASE})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 247)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bpftool")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${snisplice_packaging_dir}/conffiles ${snisplice_debian_dir}/postinst
    ${snisplice_debian_dir}/prerm ${snisplice_debian_dir}/postrm)
include(CPack)
