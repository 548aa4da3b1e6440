# Debian packages with CPack (`cpack -G DEB` in a build tree; test_packages builds, lints,
# installs and removes them):
#   mos      mosd, its systemd unit, the users' commands, mosbench, the husk, the example
#            config (a conffile: dpkg keeps a site's edits)
#   mos-dev  the module libraries (static), their public headers and mos.pc
#   mos-slurm  the Slurm SPANK plugin mos_spank.so (srun --mos) and the checkpoint-and-requeue
#            batch script, when the plugin is built (libslurm-dev found)
# The unit is installed, not enabled: a node needs its key and node list first.
# Paths are compiled in (the husk, the unit's ExecStart, mos.pc), so packages come from a tree
# configured with -DCMAKE_INSTALL_PREFIX=/usr: ./dev.sh package makes build-deb/ that way.
# the module libraries are static: what they use must be linked by whoever links them
set(MOS_PC_REQUIRES "libsodium inih libxxhash hwloc json-c")
if(MOS_HAVE_VERBS)
  string(APPEND MOS_PC_REQUIRES " libibverbs librdmacm")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/packaging/mos.pc.in ${CMAKE_BINARY_DIR}/mos.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/mos.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT dev)
# Debian wants a copyright file (and a changelog) in each package's doc directory.
string(TIMESTAMP MOS_PKG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE ${CMAKE_BINARY_DIR}/changelog.Debian
     "mos (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
     "  * Built from the project's tree; see its git log.\n\n"
     " -- ${MOS_PACKAGE_MAINTAINER}  ${MOS_PKG_DATE}\n")
set(MOS_PACKAGES mos mos-dev)
if(MOS_HAVE_SLURM)
  list(APPEND MOS_PACKAGES mos-slurm)
endif()
foreach(pkg ${MOS_PACKAGES})
  if(pkg STREQUAL "mos")
    set(comp mos)
  elseif(pkg STREQUAL "mos-dev")
    set(comp dev)
  else()
    set(comp slurm)
  endif()
  install(FILES ${CMAKE_SOURCE_DIR}/cmake/packaging/copyright
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg} COMPONENT ${comp})
  install(CODE "execute_process(COMMAND gzip -9n -c ${CMAKE_BINARY_DIR}/changelog.Debian
                                OUTPUT_FILE ${CMAKE_BINARY_DIR}/changelog.Debian.gz)"
          COMPONENT ${comp})
  install(FILES ${CMAKE_BINARY_DIR}/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg} COMPONENT ${comp})
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mos)
set(CPACK_PACKAGE_VENDOR "mos")
set(MOS_PACKAGE_MAINTAINER "mos maintainers <mos@example.org>" CACHE STRING
    "Maintainer field of the Debian packages (a site building its own puts itself here)")
set(CPACK_PACKAGE_CONTACT "${MOS_PACKAGE_MAINTAINER}")
# the example config is installed to /etc/mos whatever the prefix (etc/CMakeLists.txt), so
# the staging area must be a DESTDIR
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL mos dev)
if(MOS_HAVE_SLURM)
  list(APPEND CPACK_COMPONENTS_ALL slurm)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_MOS_PACKAGE_NAME mos)
# libmoscomm.so (the PMPI recorder) is a shared library: ldconfig runs after install
set(CPACK_DEBIAN_MOS_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/conffiles ${CMAKE_BINARY_DIR}/triggers)
set(CPACK_COMPONENT_MOS_DESCRIPTION "MOSIX-style cluster runtime: mosd and the users' commands
mosrun starts an unmodified program on its home node; the cluster moves it
preemptively to the node with the best free resources while its system calls
keep running at home through a deputy.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME mos-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libsodium-dev, libinih-dev, libxxhash-dev, libhwloc-dev, libjson-c-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION "mos cluster runtime: static libraries, headers and pkg-config file
The transport, checkpoint/restart, remote execution, gossip and placement
libraries behind mos, for tools built on them.")
set(CPACK_DEBIAN_SLURM_PACKAGE_NAME mos-slurm)
set(CPACK_DEBIAN_SLURM_PACKAGE_DEPENDS "mos (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_SLURM_PACKAGE_ENHANCES "slurmd, slurm-client")
set(CPACK_COMPONENT_SLURM_DESCRIPTION "mos cluster runtime: Slurm SPANK plugin (srun --mos)
mos_spank.so starts each task of a Slurm job under mosrun, its migrations
held to the job's nodes; enable it with a line in plugstack.conf. Also an
example batch script for checkpoint and requeue (sbatch --requeue).")
# The husk is static on purpose: no libc, no loader, nothing mapped but itself, so the job's
# address space can be rebuilt in it (migrate/README.md).
file(WRITE ${CMAKE_BINARY_DIR}/lintian-overrides
     "mos: statically-linked-binary [usr/libexec/mos/mos-husk]\n")
install(FILES ${CMAKE_BINARY_DIR}/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides
        RENAME mos COMPONENT mos)
file(WRITE ${CMAKE_BINARY_DIR}/conffiles "/etc/mos/mos.conf\n")
file(WRITE ${CMAKE_BINARY_DIR}/triggers "activate-noawait ldconfig\n")
include(CPack)
