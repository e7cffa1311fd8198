# Finds c-ares, the asynchronous DNS resolver (Debian: libc-ares-dev), which its Debian package
# ships without a CMake package of its own. Defines the imported target CAres::CAres.
find_path(CAres_INCLUDE_DIR ares.h)
find_library(CAres_LIBRARY NAMES cares)
if(CAres_INCLUDE_DIR AND EXISTS "${CAres_INCLUDE_DIR}/ares_version.h")
  file(STRINGS "${CAres_INCLUDE_DIR}/ares_version.h" version_line
    REGEX "^#define ARES_VERSION_STR \"[^\"]*\"")
  string(REGEX REPLACE "^.*\"([^\"]*)\".*$" "\\1" CAres_VERSION "${version_line}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAres REQUIRED_VARS CAres_LIBRARY CAres_INCLUDE_DIR
  VERSION_VAR CAres_VERSION)
if(CAres_FOUND AND NOT TARGET CAres::CAres)
  add_library(CAres::CAres UNKNOWN IMPORTED)
  set_target_properties(CAres::CAres PROPERTIES
    IMPORTED_LOCATION "${CAres_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAres_INCLUDE_DIR}")
endif()
mark_as_advanced(CAres_INCLUDE_DIR CAres_LIBRARY)
