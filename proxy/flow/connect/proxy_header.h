#pragma once
// Forwarding header, to be removed once proxy/session/hello.cpp and dial.cpp include
// "flow/proxy_protocol/proxy_header.h" (the codec moved there: both stages use it).
#include "flow/proxy_protocol/proxy_header.h"
