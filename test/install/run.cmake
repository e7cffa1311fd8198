# Installs the awaitdb just built into a scratch prefix, then configures, builds and runs a
# consumer project that finds it with find_package(awaitdb CONFIG REQUIRED), and builds and runs
# the same program with a plain Makefile through pkg-config; then packs the build as a Debian
# package (cpack -G DEB), checks that dpkg would install it, and builds the consumer against its
# files. The library alone
# (no tests, examples or benchmarks) is configured too, as a packager would, but not compiled
# again: its sources are the ones the build tree just compiled.
file(REMOVE_RECURSE ${WORK_DIR})
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release
  -DAWAITDB_BUILD_TESTS=OFF -DAWAITDB_BUILD_EXAMPLES=OFF -DAWAITDB_BUILD_BENCH=OFF
  -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
step(${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${WORK_DIR}/prefix)
step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/test/install/consumer -B ${WORK_DIR}/consumer
  -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
step(${WORK_DIR}/consumer/consumer)
step(${WORK_DIR}/consumer/json_consumer)  # the json component, found with its Boost.JSON
# (GNUInstallDirs may pick lib, lib64 or a multiarch directory: found, not assumed.)
file(GLOB_RECURSE pc_files ${WORK_DIR}/prefix/*/awaitdb.pc)
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
step(make --no-print-directory -C ${SOURCE_DIR}/test/install/consumer OUT=${WORK_DIR}
  CXX=${CXX_COMPILER} ${WORK_DIR}/consumer-make)
step(${WORK_DIR}/consumer-make)

step(cpack -G DEB -B ${WORK_DIR}/deb --config ${BINARY_DIR}/CPackConfig.cmake)
file(GLOB debs ${WORK_DIR}/deb/*.deb)
list(GET debs 0 deb)
step(dpkg --dry-run -i ${deb})  # its dependencies are met: it would install
step(dpkg-deb -x ${deb} ${WORK_DIR}/deb-root)
step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/test/install/consumer -B ${WORK_DIR}/consumer-deb
  -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${WORK_DIR}/deb-root/usr)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-deb)
step(${WORK_DIR}/consumer-deb/consumer)
step(${WORK_DIR}/consumer-deb/json_consumer)
