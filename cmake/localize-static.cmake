# cmake -DARCHIVE=libiopf.a -DLD=ld -DOBJCOPY=objcopy -DAR=ar -P localize-static.cmake
#
# Rewrites a static library in place so that it exports only the public
# API: its members are partially linked into one object (ld -r), whose
# hidden symbols (everything not marked IOPF_API, as the sources are built
# with -fvisibility=hidden) are then made local (objcopy --localize-hidden).
# Internal names (iopf__*, tbl_*) can then never clash with a user's.
foreach(v ARCHIVE LD OBJCOPY AR)
  if(NOT ${v})
    message(FATAL_ERROR "localize-static.cmake: ${v} not set")
  endif()
endforeach()
get_filename_component(name "${ARCHIVE}" NAME_WE)
set(obj "${ARCHIVE}.${name}-all.o")
set(tmp "${ARCHIVE}.tmp")
file(REMOVE "${obj}" "${tmp}")
execute_process(COMMAND "${LD}" -r --whole-archive "${ARCHIVE}" -o "${obj}"
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${OBJCOPY}" --localize-hidden "${obj}"
                COMMAND_ERROR_IS_FATAL ANY)
# The member is named after the library, as a user would expect.
get_filename_component(dir "${obj}" DIRECTORY)
file(RENAME "${obj}" "${dir}/${name}.o")
execute_process(COMMAND "${AR}" rcs "${tmp}" "${name}.o" WORKING_DIRECTORY "${dir}"
                COMMAND_ERROR_IS_FATAL ANY)
file(REMOVE "${dir}/${name}.o")
file(RENAME "${tmp}" "${ARCHIVE}")
