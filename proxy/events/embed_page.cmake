# cmake -DINPUT=web/status.html -DOUTPUT=page.cpp -P embed_page.cmake
# Writes the page as a raw string literal behind events::status_page(), so the binary serves
# it with nothing installed beside it. Raw literals are capped in length by compilers only far
# beyond a page; the delimiter must not occur in it.
file(READ "${INPUT}" page)
set(delimiter "snisplice_page")
string(FIND "${page}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string delimiter )${delimiter}\"")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${INPUT} by embed_page.cmake: edit that file, not this one.\n"
  "#include \"events/page.h\"\n\n"
  "namespace snisplice::events {\n\n"
  "std::string_view status_page() {\n"
  "  static constexpr std::string_view kPage = R\"${delimiter}(${page})${delimiter}\";\n"
  "  return kPage;\n"
  "}\n\n"
  "}  // namespace snisplice::events\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
