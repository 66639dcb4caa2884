/*
 * shm-args.cc: argument readers and Node-style errors for the glue.
 *
 * Every native reads its arguments through these before touching a segment.
 * Nothing is coerced; a wrong argument throws TypeError/RangeError with the
 * `code` and the wording Node's own functions use (ERR_INVALID_ARG_TYPE,
 * ERR_OUT_OF_RANGE), so both APIs, and the original six used alone through
 * build/Release/shm.node, describe a bad argument the same way.
 */
#include <uv.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "shm.h"

namespace shm {

// ==== Errors ====

namespace {

Local<Value> NewError(ErrorKind kind, const std::string &message) {
  return kind == kTypeError    ? Nan::TypeError(message.c_str())
         : kind == kRangeError ? Nan::RangeError(message.c_str())
                               : Nan::Error(message.c_str());
}

} // namespace

Local<Value> CodedError(ErrorKind kind, const char *code, const std::string &message) {
  Local<Value> error = NewError(kind, message);
  Nan::Set(error.As<Object>(), Nan::New("code").ToLocalChecked(), Nan::New(code).ToLocalChecked());
  return error;
}

void ThrowCoded(ErrorKind kind, const char *code, const std::string &message) {
  Nan::ThrowError(CodedError(kind, code, message));
}

std::string Utf8(Local<Value> value) {
  Nan::Utf8String text(value);
  return *text ? std::string(*text, text.length()) : std::string();
}

// A number as JavaScript prints it (NaN, Infinity, 1e+300), -0 included.
std::string NumberText(double value) {
  return value == 0 && std::signbit(value) ? "-0" : Utf8(Nan::New(value));
}

// How Node's errors describe a received value ("Received type string ('x')").
std::string Received(Local<Value> value) {
  if (value->IsUndefined()) return "Received undefined";
  if (value->IsNull()) return "Received null";
  if (value->IsFunction()) {
    std::string name = Utf8(value.As<v8::Function>()->GetName());
    return name.empty() ? "Received function <anonymous>" : "Received function " + name;
  }
  if (value->IsObject()) {
    std::string name = Utf8(value.As<Object>()->GetConstructorName());
    return "Received an instance of " + name;
  }
  std::string type = Utf8(value->TypeOf(v8::Isolate::GetCurrent()));
  if (value->IsSymbol()) return "Received type symbol";
  std::string shown = value->IsNumber() ? NumberText(value.As<v8::Number>()->Value()) : Utf8(value);
  if (value->IsString()) {
    if (shown.size() > 28) shown = shown.substr(0, 25) + "...";
    shown = "'" + shown + "'";
  } else if (value->IsBigInt()) {
    shown += "n";
  }
  return "Received type " + type + " (" + shown + ")";
}

void ThrowArgType(const char *name, const char *expected, Local<Value> value) {
  ThrowCoded(kTypeError, "ERR_INVALID_ARG_TYPE",
             std::string("The \"") + name + "\" argument must be " + expected + ". " +
                 Received(value));
}

void ThrowOutOfRange(const char *name, const std::string &must, const std::string &received) {
  ThrowCoded(kRangeError, "ERR_OUT_OF_RANGE",
             std::string("The value of \"") + name + "\" is out of range. It must be " + must +
                 ". Received " + received);
}

std::string Between(double min, double max, const char *why) {
  std::string text = ">= " + NumberText(min) + " && <= " + NumberText(max);
  return why ? text + " (" + why + ")" : text;
}

void ThrowBadHandle(double handle) {
  ThrowCoded(kError, "ERR_SHM_BAD_HANDLE",
             "Handle " + NumberText(handle) +
                 " is not an open segment: it was never returned by openSHM(), or closeSHM() "
                 "closed it");
}

const char *ErrnoName(int err) {
  switch (err) {
  case EACCES: return "EACCES";
  case EEXIST: return "EEXIST";
  case EINVAL: return "EINVAL";
  case ENOENT: return "ENOENT";
  case ENOMEM: return "ENOMEM";
  case ENOSPC: return "ENOSPC";
  case EPERM: return "EPERM";
  case EMFILE: return "EMFILE";
  case ENFILE: return "ENFILE";
  case EAGAIN: return "EAGAIN";
  case EINTR: return "EINTR";
  case EFAULT: return "EFAULT";
#ifdef EIDRM
  case EIDRM: return "EIDRM";
#endif
#ifdef EOVERFLOW
  case EOVERFLOW: return "EOVERFLOW";
#endif
#ifndef _WIN32
  default: return uv_err_name(-err); // libuv's codes are -errno on POSIX
#else
  default: return "EUNKNOWN";
#endif
  }
}

// ---- Failures as fields (Report), worded by lib/errors.js ----

namespace {

// The function lib/binding.js hands over (setErrorFactory), for this thread's
// JavaScript environment: main thread or worker.
thread_local Nan::Global<v8::Function> *error_factory = nullptr;

void ForgetErrorFactory(void *) {
  delete error_factory;
  error_factory = nullptr;
}

/** setErrorFactory(fn): fn(fields) makes the Error of every Report from now on. */
NAN_METHOD(SetErrorFactory) {
  if (!info[0]->IsFunction()) return ThrowArgType("factory", "of type function", info[0]);
  if (!error_factory) {
    error_factory = new Nan::Global<v8::Function>();
    node::AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), ForgetErrorFactory, nullptr);
  }
  error_factory->Reset(info[0].As<v8::Function>());
}

} // namespace

Report::Report(ErrorKind kind, const char *code) : kind_(kind), fields_(Nan::New<Object>()) {
  Set("code", code);
}

Report Report::Os(int status, const char *syscall) {
  int err = -status;
  Report report(kError, ErrnoName(err));
  report.Set("errno", -err).Set("syscall", syscall).Set("reason", strerror(err));
  return report;
}

Report &Report::Set(const char *name, Local<Value> value) {
  Nan::Set(fields_, Nan::New(name).ToLocalChecked(), value);
  return *this;
}

Report &Report::Set(const char *name, double value) { return Set(name, Nan::New(value)); }

Report &Report::Set(const char *name, const char *value) {
  return Set(name, Nan::New(value).ToLocalChecked());
}

// Without lib/ (the addon used alone): a terse message, "CODE: syscall: reason".
Local<Value> Report::Bare() const {
  std::string message = Utf8(Get("code"));
  Local<Value> syscall = Get("syscall");
  if (syscall->IsString()) message += ": " + Utf8(syscall) + ": " + Utf8(Get("reason"));
  Local<Value> error = NewError(kind_, message);
  Local<v8::Array> names = Nan::GetOwnPropertyNames(fields_).ToLocalChecked();
  for (uint32_t i = 0; i < names->Length(); i++) {
    Local<Value> name = Nan::Get(names, i).ToLocalChecked();
    Nan::Set(error.As<Object>(), name, Nan::Get(fields_, name).ToLocalChecked());
  }
  return error;
}

Local<Value> Report::Get(const char *name) const {
  return Nan::Get(fields_, Nan::New(name).ToLocalChecked()).ToLocalChecked();
}

void Report::Throw() const {
  if (!error_factory) return Nan::ThrowError(Bare());
  Local<Value> argv[] = {fields_};
  Local<Value> error;
  // If the factory throws, that exception is pending and goes up instead.
  Local<Object> global = Nan::GetCurrentContext()->Global();
  if (Nan::Call(Nan::New(*error_factory), global, 1, argv).ToLocal(&error)) {
    Nan::ThrowError(error);
  }
}

NAN_MODULE_INIT(InitErrors) { Nan::SetMethod(target, "setErrorFactory", SetErrorFactory); }

// ==== Arguments ====

bool IntegerArg(Local<Value> value, const char *name, double min, double max, const char *why,
                double *out) {
  double number;
  if (value->IsInt32()) { // the usual case, and no fraction to check
    number = value.As<v8::Int32>()->Value();
  } else if (value->IsNumber()) {
    number = value.As<v8::Number>()->Value();
    // Below 2^63 an integer survives the round trip through int64_t; the
    // comparison also fails for NaN and the infinities.
    bool integer =
        std::fabs(number) < 9.2e18 && static_cast<double>(static_cast<int64_t>(number)) == number;
    if (!integer && !(std::isfinite(number) && std::fabs(number) >= 9.2e18)) {
      ThrowOutOfRange(name, "an integer", NumberText(number));
      return false;
    }
  } else {
    ThrowArgType(name, "of type number", value);
    return false;
  }
  if (number < min || number > max) {
    ThrowOutOfRange(name, Between(min, max, why), NumberText(number));
    return false;
  }
  *out = number;
  return true;
}

bool HandleArg(Local<Value> value, double *handle) {
  return IntegerArg(value, "handle", -kMaxSafeInteger, kMaxSafeInteger, nullptr, handle);
}

bool KeyArg(Local<Value> value, int32_t *key) {
  double number;
  if (!IntegerArg(value, "key", -2147483648.0, 4294967295.0, nullptr, &number)) return false;
  *key = static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(number)));
  return true;
}

// One look at the view (node::Buffer::Data and Length would each check it
// again and fetch its ArrayBuffer again: a few ns on every call).
Bytes ViewBytes(Local<Value> view) {
  Local<v8::ArrayBufferView> v = view.As<v8::ArrayBufferView>();
  return {static_cast<const unsigned char *>(v->Buffer()->Data()) + v->ByteOffset(),
          v->ByteLength()};
}

bool Scratch::Reserve(uint64_t size) {
  std::free(data_);
  data_ = size > SIZE_MAX ? nullptr : static_cast<unsigned char *>(std::malloc(size ? size : 1));
  if (!data_) Report::Os(-ENOMEM, "malloc").Set("size", static_cast<double>(size)).Throw();
  return data_ != nullptr;
}

bool DataArg(Local<Value> data, Scratch *text, Bytes *bytes) {
  if (data->IsArrayBufferView()) {
    *bytes = ViewBytes(data);
    return true;
  }
  if (!data->IsString()) {
    ThrowArgType("data", "of type string or an instance of Buffer, TypedArray, or DataView", data);
    return false;
  }
  // Through malloc, not Nan::Utf8String, which asserts (aborts) when memory is
  // short. Room for the worst case, 3 bytes per UTF-16 unit: Node's own size
  // (DecodeBytes) counts a lone surrogate as 2 bytes on Node 24, yet writes
  // U+FFFD (3), so a buffer of that size lost the string's last bytes.
  uint64_t room = static_cast<uint64_t>(data.As<v8::String>()->Length()) * 3;
  if (!text->Reserve(room)) return false;
  ssize_t written = Nan::DecodeWrite(reinterpret_cast<char *>(text->data()),
                                     static_cast<size_t>(room), data, Nan::UTF8);
  *bytes = {text->data(), static_cast<size_t>(written > 0 ? written : 0)};
  return true;
}

Local<v8::Function> NewFunction(Nan::FunctionCallback callback, const char *name) {
  Local<v8::Function> function =
      Nan::GetFunction(Nan::New<v8::FunctionTemplate>(callback)).ToLocalChecked();
  function->SetName(Nan::New(name).ToLocalChecked());
  return function;
}

} // namespace shm
