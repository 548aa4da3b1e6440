# Dependencies through pkg-config. Required ones stop the configure step with the Debian
# package to install; optional ones turn a feature off and say so once, with the reason.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

set(MOS_FEATURE_LINES "")
function(mos_feature name state why)
  set(MOS_FEATURE_LINES "${MOS_FEATURE_LINES}  ${name}: ${state} (${why})\n" PARENT_SCOPE)
endfunction()

# mos_require(VAR pkgconfig-name debian-package)
macro(mos_require var pcname debpkg)
  pkg_check_modules(${var} IMPORTED_TARGET ${pcname})
  if(NOT ${var}_FOUND)
    message(FATAL_ERROR "mos needs ${pcname}: apt-get install ${debpkg}")
  endif()
endmacro()

mos_require(SODIUM libsodium libsodium-dev)     # HMAC-SHA256, random keys, constant-time compare
mos_require(INIH inih libinih-dev)              # the INI config parser
mos_require(JSONC json-c libjson-c-dev)         # --json output of the commands
mos_require(EVENT libevent libevent-dev)        # mosd's event loop
mos_require(HWLOC hwloc libhwloc-dev)           # topology
mos_require(CMOCKA cmocka libcmocka-dev)        # unit tests
mos_require(XXHASH libxxhash libxxhash-dev)     # image record checksums (XXH3)

# libnuma has no .pc file on Debian 12.
find_path(NUMA_INCLUDE_DIR numa.h)
find_library(NUMA_LIBRARY numa)
if(NUMA_INCLUDE_DIR AND NUMA_LIBRARY)
  add_library(mos_numa INTERFACE)
  target_include_directories(mos_numa INTERFACE ${NUMA_INCLUDE_DIR})
  target_link_libraries(mos_numa INTERFACE ${NUMA_LIBRARY})
  set(MOS_HAVE_NUMA ON)
  mos_feature("NUMA binding" ON "libnuma found")
else()
  set(MOS_HAVE_NUMA OFF)
  mos_feature("NUMA binding" OFF "no numa.h / libnuma: apt-get install libnuma-dev")
endif()

# rdma-core: the verbs backend needs both libibverbs and librdmacm.
pkg_check_modules(IBVERBS IMPORTED_TARGET libibverbs)
pkg_check_modules(RDMACM IMPORTED_TARGET librdmacm)
if(IBVERBS_FOUND AND RDMACM_FOUND)
  set(MOS_HAVE_VERBS ON)
  mos_feature("verbs transport" ON "libibverbs ${IBVERBS_VERSION}, librdmacm ${RDMACM_VERSION}")
else()
  set(MOS_HAVE_VERBS OFF)
  mos_feature("verbs transport" OFF "no rdma-core headers: apt-get install libibverbs-dev librdmacm-dev")
endif()

pkg_check_modules(PAPI IMPORTED_TARGET papi)
if(PAPI_FOUND)
  set(MOS_HAVE_PAPI ON)
  mos_feature("PAPI counters" ON "papi ${PAPI_VERSION}")
else()
  set(MOS_HAVE_PAPI OFF)
  mos_feature("PAPI counters" OFF "no papi.pc: apt-get install libpapi-dev")
endif()

pkg_check_modules(OMPI IMPORTED_TARGET ompi-c)
find_program(MPIRUN mpirun)
if(OMPI_FOUND AND MPIRUN)
  set(MOS_HAVE_MPI ON)
  mos_feature("OpenMPI tests" ON "ompi ${OMPI_VERSION}, ${MPIRUN}")
else()
  set(MOS_HAVE_MPI OFF)
  mos_feature("OpenMPI tests" OFF "no ompi-c.pc or mpirun: apt-get install libopenmpi-dev openmpi-bin")
endif()

function(mos_report_features)
  message(STATUS "mos features:\n${MOS_FEATURE_LINES}")
endfunction()
