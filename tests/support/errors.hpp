// What a test learns from an exception: its message, or the errno of an os_error (each a test
// failure when nothing, or nothing of the expected type, is thrown); and a check that a
// message says something.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include <rill/error.hpp>

namespace rill_test {

// The what() of the Exception that f throws; a test failure if it throws nothing (or another
// type, which propagates).
template <typename Exception, typename F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const Exception& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected an exception";
    return {};
}

// The errno of the os_error that f throws (0 and a test failure if none).
template <typename F>
int os_error_code(F&& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const rill::os_error& e) {
        if (message) *message = e.what();
        return e.code().value();
    }
    ADD_FAILURE() << "expected an os_error";
    return 0;
}

// True when `needle` occurs in `haystack` (an error message, captured stderr).
inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace rill_test
