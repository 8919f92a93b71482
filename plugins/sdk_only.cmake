# cmake -DDIRS="dir;dir" -P sdk_only.cmake: fails when a C file under DIRS includes a
# header by a path that climbs out of its folder or names the gateway's sources. With
# only sdk/include and plugins/common on their include path, that is the one way a
# plugin could still reach a gateway-internal header.
set(bad "")
foreach(dir IN LISTS DIRS)
  file(GLOB_RECURSE files "${dir}/*.c" "${dir}/*.h")
  foreach(f IN LISTS files)
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include")
    foreach(l IN LISTS lines)
      if(l MATCHES "\\.\\./|gateway/")
        string(APPEND bad "\n  ${f}: ${l}")
      endif()
    endforeach()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "plugins may include <agentgate/plugin.h>, their own and system "
    "headers only:${bad}")
endif()
