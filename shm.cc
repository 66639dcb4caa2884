/*
 * shm.cc: the nan glue between JavaScript and shmop.c.
 *
 * It only converts: it checks every argument (types, integers, ranges) before
 * touching a segment, calls shmop_*, and turns the result into a value or an
 * error. No argument is coerced, so no user code (valueOf, getters) can run
 * while a call is in progress; the segment is looked up after the arguments
 * are read and held by a reference until the call returns.
 *
 * Contract of the original six functions: operating-system failures return 0
 * and leave the reason for lastErrorSHM(); misuse throws TypeError/RangeError/
 * Error with a Node-style `code`.
 */
#include <nan.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "shmop.h"

namespace {

using v8::Local;
using v8::Object;
using v8::Value;

// Largest integer a JavaScript number holds exactly.
const double kMaxSafeInteger = 9007199254740991.0;

// ==== Errors ====

enum ErrorKind { kError, kTypeError, kRangeError };

// An error of the given kind with a Node-style `code` property.
Local<Value> CodedError(ErrorKind kind, const char *code, const std::string &message) {
  Local<Value> error = kind == kTypeError ? Nan::TypeError(message.c_str())
                       : kind == kRangeError ? Nan::RangeError(message.c_str())
                                             : Nan::Error(message.c_str());
  Nan::Set(error.As<Object>(), Nan::New("code").ToLocalChecked(),
           Nan::New(code).ToLocalChecked());
  return error;
}

void ThrowCoded(ErrorKind kind, const char *code, const std::string &message) {
  Nan::ThrowError(CodedError(kind, code, message));
}

std::string Utf8(Local<Value> value) {
  Nan::Utf8String text(value);
  return *text ? std::string(*text, text.length()) : std::string();
}

std::string NumberText(double value) {
  char text[32];
  snprintf(text, sizeof text, "%.17g", value);
  return text;
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
  std::string shown = value->IsNumber() ? NumberText(value.As<v8::Number>()->Value())
                                        : Utf8(value);
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

// The name of an errno value, as Node spells it in `code`.
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
    default: return "EUNKNOWN";
  }
}

// An Error for an operating-system failure: `code` ('ENOENT'), `errno` (negative,
// as in Node's fs errors), `syscall`, and `key` when one is involved.
Local<Value> OsError(int status, const char *syscall, const std::string &what, const int32_t *key) {
  int err = -status;
  const char *code = ErrnoName(err);
  std::string message = std::string(code) + ": " + what;
  if (key) {
    char text[48];
    snprintf(text, sizeof text, ", key 0x%08x (%d)", static_cast<uint32_t>(*key), *key);
    message += text;
  }
  Local<Value> error = CodedError(kError, code, message + ": " + syscall + ": " + strerror(err));
  Local<Object> fields = error.As<Object>();
  Nan::Set(fields, Nan::New("errno").ToLocalChecked(), Nan::New(-err));
  Nan::Set(fields, Nan::New("syscall").ToLocalChecked(), Nan::New(syscall).ToLocalChecked());
  if (key) Nan::Set(fields, Nan::New("key").ToLocalChecked(), Nan::New(*key));
  return error;
}

// ==== The last failure of this thread (lastErrorSHM) ====

// Kept as plain data, so that it outlives any V8 handle scope; the Error is
// made when asked for. `what` is a static string.
struct LastFailure {
  int status;          // 0 (none yet), -errno, or SHMOP_EBADHANDLE
  const char *syscall; // "shmget", "shmctl", "shmat"
  const char *what;    // what could not be done, worded as PHP's warnings
  int32_t key;
  double handle;       // for SHMOP_EBADHANDLE
};

thread_local LastFailure last_failure = {0, nullptr, nullptr, 0, 0};

// Why a stage of opening fails, worded as PHP's warnings are.
const char *OpenStage(const char *failed_call) {
  if (strcmp(failed_call, "shmctl") == 0) return "unable to get shared memory segment information";
  if (strcmp(failed_call, "shmat") == 0) return "unable to attach to shared memory segment";
  return "unable to attach or create shared memory segment";
}

Local<Value> LastFailureError(const LastFailure &failure) {
  if (failure.status == SHMOP_EBADHANDLE) {
    return CodedError(kError, "ERR_SHM_BAD_HANDLE",
                      "Handle " + NumberText(failure.handle) + " is not an open segment");
  }
  return OsError(failure.status, failure.syscall, failure.what, &failure.key);
}

// ==== Arguments ====

// Reads an integer argument in [min, max]; throws and returns false otherwise.
bool IntegerArg(Local<Value> value, const char *name, double min, double max, const char *why,
                double *out) {
  if (!value->IsNumber()) {
    ThrowArgType(name, "of type number", value);
    return false;
  }
  double number = value.As<v8::Number>()->Value();
  if (!std::isfinite(number) || std::trunc(number) != number) {
    ThrowOutOfRange(name, "an integer", NumberText(number));
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

// Reads a key argument: an integer in [-2^31, 2^32), kept as its low 32 bits.
bool KeyArg(Local<Value> value, int32_t *key) {
  double number;
  if (!IntegerArg(value, "key", -2147483648.0, 4294967295.0, nullptr, &number)) return false;
  *key = static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(number)));
  return true;
}

// A reference to an open segment for the length of one call.
class Attached {
 public:
  explicit Attached(double handle) : seg_(shmop_table_acquire(static_cast<int64_t>(handle))) {}
  ~Attached() {
    if (seg_) shmop_table_release(seg_);
  }
  Attached(const Attached &) = delete;
  Attached &operator=(const Attached &) = delete;
  shmop_t *operator->() const { return seg_; }
  explicit operator bool() const { return seg_ != nullptr; }
  shmop_t *get() const { return seg_; }

 private:
  shmop_t *seg_;
};

// Bytes of a Buffer, TypedArray or DataView.
struct Bytes {
  const unsigned char *data;
  size_t length;
};

Bytes ViewBytes(Local<Value> view) {
  return {reinterpret_cast<const unsigned char *>(node::Buffer::Data(view)),
          node::Buffer::Length(view)};
}

// ==== The original six functions, and lastErrorSHM ====

/** openSHM(key, flags, mode, size) -> handle, or 0 on an operating-system failure. */
NAN_METHOD(OpenSHM) {
  int32_t key32;
  double mode, size;
  if (!KeyArg(info[0], &key32)) return;
  if (!info[1]->IsString()) return ThrowArgType("flags", "of type string", info[1]);
  std::string flags = Utf8(info[1]);
  if (!IntegerArg(info[2], "mode", -2147483648.0, 4294967295.0, nullptr, &mode)) return;
  if (!IntegerArg(info[3], "size", -kMaxSafeInteger, kMaxSafeInteger, nullptr, &size)) return;

  // Modes keep their low 32 bits, as keys do, as in PHP (signed or unsigned).
  int mode32 = static_cast<int>(static_cast<uint32_t>(static_cast<int64_t>(mode)));
  char letter = flags.size() == 1 ? flags[0] : '?';
  shmop_t seg;
  const char *failed_call = nullptr;
  int rc = shmop_open(&seg, key32, letter, mode32, static_cast<int64_t>(size), &failed_call);
  if (rc == SHMOP_EMODE) {
    return ThrowCoded(kRangeError, "ERR_INVALID_ARG_VALUE",
                      "The \"flags\" argument must be one of 'a', 'c', 'w' or 'n'. " +
                          Received(info[1]));
  }
  if (rc == SHMOP_ESIZE) {
    return ThrowOutOfRange("size", ">= 1 when creating ('c', 'n', or IPC_CREAT in \"mode\")",
                           NumberText(size));
  }
  int64_t handle = 0;
  if (rc == 0 && (rc = shmop_table_add(&seg, &handle)) != 0) {
    shmop_close(&seg);
    failed_call = "malloc";
  }
  if (rc != 0) {
    last_failure = {rc, failed_call, OpenStage(failed_call), key32, 0};
    return info.GetReturnValue().Set(0);
  }
  info.GetReturnValue().Set(static_cast<double>(handle));
}

/** sizeSHM(handle) -> the segment's size in bytes. */
NAN_METHOD(SizeSHM) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  info.GetReturnValue().Set(static_cast<double>(seg->size));
}

/** writeSHM(handle, data, offset[, data_len]) -> bytes written (cut at the end). */
NAN_METHOD(WriteSHM) {
  double handle, offset, length;
  if (!HandleArg(info[0], &handle)) return;
  Local<Value> data = info[1];
  bool is_string = data->IsString();
  if (!is_string && !data->IsArrayBufferView()) {
    return ThrowArgType("data", "of type string or an instance of Buffer, TypedArray, or DataView",
                        data);
  }
  if (!IntegerArg(info[2], "offset", 0, kMaxSafeInteger, nullptr, &offset)) return;
  std::string text;  // the UTF-8 bytes of a string; empty for a view
  if (is_string) text = Utf8(data);
  Bytes bytes = is_string ? Bytes{reinterpret_cast<const unsigned char *>(text.data()), text.size()}
                          : ViewBytes(data);
  length = static_cast<double>(bytes.length);
  if (!info[3]->IsUndefined() &&
      !IntegerArg(info[3], "data_len", 0, length, "the data's length", &length)) {
    return;
  }
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  uint64_t written = 0;
  int rc = shmop_write(seg.get(), bytes.data, static_cast<uint64_t>(length),
                       static_cast<uint64_t>(offset), &written);
  if (rc == SHMOP_EREADONLY) {
    return ThrowCoded(kError, "ERR_SHM_READ_ONLY",
                      "Handle " + NumberText(handle) +
                          " was opened read-only ('a') and cannot be written; open the segment "
                          "with 'w' or 'c' to write");
  }
  if (rc == SHMOP_EOFFSET) {
    return ThrowOutOfRange("offset", Between(0, static_cast<double>(seg->size), "the segment size"),
                           NumberText(offset));
  }
  info.GetReturnValue().Set(static_cast<double>(written));
}

// Reads start and length for a read, as shmop_read checks them.
bool ReadSpan(const shmop_t *seg, double start, double count, uint64_t *length) {
  int rc = shmop_read_span(seg, static_cast<uint64_t>(start), static_cast<uint64_t>(count), length);
  double size = static_cast<double>(seg->size);
  if (rc == SHMOP_EOFFSET) {
    ThrowOutOfRange("start", Between(0, size, "the segment size"), NumberText(start));
    return false;
  }
  if (rc == SHMOP_ECOUNT) {
    ThrowOutOfRange("length", Between(0, size - start, "the bytes from \"start\" to the end"),
                    NumberText(count));
    return false;
  }
  return true;
}

/** readLength(handle, start, length) -> how many bytes readSHM(handle, start, length) returns. */
NAN_METHOD(ReadLength) {
  double handle, start, count;
  if (!HandleArg(info[0], &handle)) return;
  if (!IntegerArg(info[1], "start", 0, kMaxSafeInteger, nullptr, &start)) return;
  if (!IntegerArg(info[2], "length", 0, kMaxSafeInteger, nullptr, &count)) return;
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  uint64_t length;
  if (!ReadSpan(seg.get(), start, count, &length)) return;
  if (length > node::Buffer::kMaxLength) {
    return ThrowCoded(kRangeError, "ERR_BUFFER_TOO_LARGE",
                      "Cannot read " + NumberText(static_cast<double>(length)) +
                          " bytes into one Buffer: the largest Buffer holds " +
                          NumberText(static_cast<double>(node::Buffer::kMaxLength)) +
                          " bytes; read it in parts");
  }
  info.GetReturnValue().Set(static_cast<double>(length));
}

/** readIntoSHM(handle, target, targetOffset, start, length) -> bytes copied into target. */
NAN_METHOD(ReadIntoSHM) {
  double handle, target_offset, start, length;
  if (!HandleArg(info[0], &handle)) return;
  Local<Value> target = info[1];
  if (!target->IsArrayBufferView()) {
    return ThrowArgType("target", "an instance of Buffer, TypedArray, or DataView", target);
  }
  Bytes room = ViewBytes(target);
  double capacity = static_cast<double>(room.length);
  if (!IntegerArg(info[2], "targetOffset", 0, capacity, "the target's length", &target_offset) ||
      !IntegerArg(info[3], "start", 0, kMaxSafeInteger, nullptr, &start) ||
      !IntegerArg(info[4], "length", 0, capacity - target_offset,
                  "the room in \"target\" after \"targetOffset\"", &length)) {
    return;
  }
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  uint64_t span;
  if (!ReadSpan(seg.get(), start, length, &span)) return;
  shmop_read(seg.get(), static_cast<uint64_t>(start), static_cast<uint64_t>(length),
             const_cast<unsigned char *>(room.data) + static_cast<size_t>(target_offset));
  info.GetReturnValue().Set(length);
}

/** deleteSHM(handle) -> 1, or 0 when the system refuses or the handle is not open. */
NAN_METHOD(DeleteSHM) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  Attached seg(handle);
  if (!seg) {
    last_failure = {SHMOP_EBADHANDLE, nullptr, nullptr, 0, handle};
    return info.GetReturnValue().Set(0);
  }
  int rc = shmop_delete(seg.get());
  if (rc != 0) {
    last_failure = {rc, "shmctl", "can't mark segment for deletion (are you the owner?)", seg->key,
                    handle};
    return info.GetReturnValue().Set(0);
  }
  info.GetReturnValue().Set(1);
}

/** closeSHM(handle) -> 1 when it detached, 0 when the handle was not open. */
NAN_METHOD(CloseSHM) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  if (shmop_table_close(static_cast<int64_t>(handle)) != 0) {
    last_failure = {SHMOP_EBADHANDLE, nullptr, nullptr, 0, handle};
    return info.GetReturnValue().Set(0);
  }
  info.GetReturnValue().Set(1);
}

/** lastErrorSHM() -> null, or an Error for the last failure in this thread. */
NAN_METHOD(LastErrorSHM) {
  if (last_failure.status == 0) return info.GetReturnValue().SetNull();
  info.GetReturnValue().Set(LastFailureError(last_failure));
}

// ==== For the modern API (lib/): these throw on operating-system failures ====

/** infoSHM(handle) -> { key, id, size, readOnly } of an open segment. */
NAN_METHOD(InfoSHM) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  Local<Object> result = Nan::New<Object>();
  Nan::Set(result, Nan::New("key").ToLocalChecked(), Nan::New(seg->key));
  Nan::Set(result, Nan::New("id").ToLocalChecked(), Nan::New(seg->id));
  Nan::Set(result, Nan::New("size").ToLocalChecked(), Nan::New(static_cast<double>(seg->size)));
  Nan::Set(result, Nan::New("readOnly").ToLocalChecked(), Nan::New<v8::Boolean>(seg->readonly != 0));
  info.GetReturnValue().Set(result);
}

// Gives back the reference a view held, once V8 has collected the view.
void ReleaseView(char *, void *seg) { shmop_table_release(static_cast<shmop_t *>(seg)); }

/**
 * viewSHM(handle) -> a Buffer over the segment's memory (no copy). The view
 * holds a reference, so the mapping outlives closeSHM() until the view is
 * garbage-collected: it can never point at unmapped memory.
 */
NAN_METHOD(ViewSHM) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  shmop_t *seg = shmop_table_acquire(static_cast<int64_t>(handle));
  if (!seg) return ThrowBadHandle(handle);
  if (seg->readonly) {
    shmop_table_release(seg);
    return ThrowCoded(kError, "ERR_SHM_READ_ONLY",
                      "A segment opened read-only ('a') has no view: a write through it would "
                      "crash the process. Use read() or readInto(), or open it with 'w'");
  }
  if (seg->size > node::Buffer::kMaxLength) {
    double size = static_cast<double>(seg->size);
    shmop_table_release(seg);
    return ThrowCoded(kRangeError, "ERR_BUFFER_TOO_LARGE",
                      "A segment of " + NumberText(size) + " bytes is larger than a Buffer can be (" +
                          NumberText(static_cast<double>(node::Buffer::kMaxLength)) +
                          " bytes); use read() or readInto() on parts of it");
  }
  Local<Object> view;
  // On failure Node calls ReleaseView itself.
  if (!Nan::NewBuffer(reinterpret_cast<char *>(seg->addr), static_cast<size_t>(seg->size),
                      ReleaseView, seg)
           .ToLocal(&view)) {
    return;
  }
  info.GetReturnValue().Set(view);
}

Local<Value> Seconds(int64_t seconds) {
  if (seconds == 0) return Nan::Null();
  return Nan::New<v8::Date>(static_cast<double>(seconds) * 1000.0).ToLocalChecked();
}

Local<Object> StatObject(const shmop_stat_t &st) {
  Local<Object> result = Nan::New<Object>();
  auto set = [&](const char *name, Local<Value> value) {
    Nan::Set(result, Nan::New(name).ToLocalChecked(), value);
  };
  set("key", Nan::New(st.key));
  set("id", Nan::New(st.id));
  set("size", Nan::New(static_cast<double>(st.size)));
  set("mode", Nan::New(st.mode));
  set("uid", Nan::New(st.uid));
  set("gid", Nan::New(st.gid));
  set("cuid", Nan::New(st.cuid));
  set("cgid", Nan::New(st.cgid));
  set("cpid", Nan::New(static_cast<double>(st.cpid)));
  set("lpid", Nan::New(static_cast<double>(st.lpid)));
  set("attachments", Nan::New(static_cast<double>(st.attachments)));
  set("atime", Seconds(st.atime));
  set("dtime", Seconds(st.dtime));
  set("ctime", Seconds(st.ctime));
  set("markedForDeletion", Nan::New<v8::Boolean>(st.marked != 0));
  return result;
}

/** statSHM(handle) -> the kernel's description of an open segment. */
NAN_METHOD(StatSHM) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  shmop_stat_t st;
  int rc = shmop_stat(seg->id, &st);
  if (rc != 0) return Nan::ThrowError(OsError(rc, "shmctl", "unable to get shared memory segment information", &seg->key));
  info.GetReturnValue().Set(StatObject(st));
}

/** statKeySHM(key) -> the kernel's description of the segment with this key. */
NAN_METHOD(StatKeySHM) {
  int32_t key;
  if (!KeyArg(info[0], &key)) return;
  int id = -1;
  shmop_stat_t st;
  int rc = shmop_find(key, &id);
  if (rc != 0) return Nan::ThrowError(OsError(rc, "shmget", "unable to find shared memory segment", &key));
  rc = shmop_stat(id, &st);
  if (rc != 0) return Nan::ThrowError(OsError(rc, "shmctl", "unable to get shared memory segment information", &key));
  info.GetReturnValue().Set(StatObject(st));
}

/** removeKeySHM(key) -> undefined; marks the segment with this key for deletion. */
NAN_METHOD(RemoveKeySHM) {
  int32_t key;
  if (!KeyArg(info[0], &key)) return;
  int id = -1;
  int rc = shmop_find(key, &id);
  if (rc != 0) return Nan::ThrowError(OsError(rc, "shmget", "unable to find shared memory segment", &key));
  rc = shmop_remove(id);
  if (rc != 0) return Nan::ThrowError(OsError(rc, "shmctl", "can't mark segment for deletion (are you the owner?)", &key));
}

/** ftokSHM(path, project) -> the key ftok(3) and PHP's ftok() give. */
NAN_METHOD(FtokSHM) {
  if (!info[0]->IsString()) return ThrowArgType("path", "of type string", info[0]);
  if (!info[1]->IsString()) return ThrowArgType("projectId", "of type string", info[1]);
  std::string path = Utf8(info[0]);
  std::string project = Utf8(info[1]);
  if (path.empty() || path.find('\0') != std::string::npos) {
    return ThrowCoded(kRangeError, "ERR_INVALID_ARG_VALUE",
                      "The \"path\" argument must be a non-empty string without NUL bytes. " +
                          Received(info[0]));
  }
  if (project.size() != 1) {
    return ThrowCoded(kRangeError, "ERR_INVALID_ARG_VALUE",
                      "The \"projectId\" argument must be a single character (one byte). " +
                          Received(info[1]));
  }
  int32_t key;
  int rc = shmop_ftok(path.c_str(), static_cast<unsigned char>(project[0]), &key);
  if (rc != 0) {
    Local<Value> error = OsError(rc, "ftok", "ftok() failed for '" + path + "'", nullptr);
    Nan::Set(error.As<Object>(), Nan::New("path").ToLocalChecked(), info[0]);
    return Nan::ThrowError(error);
  }
  info.GetReturnValue().Set(key);
}

// readSHM allocates its Buffer in JavaScript: Buffer.allocUnsafe() takes small
// Buffers from Node's pool, which is several times cheaper than making one here.
const char kReadSHMSource[] =
    "(function (readLength, readInto, Buffer) {\n"
    "  'use strict';\n"
    "  return function readSHM(handle, start, length) {\n"
    "    const n = readLength(handle, start, length);\n"
    "    let copy;\n"
    "    try {\n"
    "      copy = Buffer.allocUnsafe(n);\n"
    "    } catch (cause) {\n"
    "      const error = new Error(`Cannot allocate ${n} bytes for the copy`, { cause });\n"
    "      error.code = 'ERR_MEMORY_ALLOCATION_FAILED';\n"
    "      throw error;\n"
    "    }\n"
    "    readInto(handle, copy, 0, start, n);\n"
    "    return copy;\n"
    "  };\n"
    "})";

Local<v8::Function> NewFunction(Nan::FunctionCallback callback, const char *name) {
  Local<v8::Function> function = Nan::GetFunction(Nan::New<v8::FunctionTemplate>(callback))
                                     .ToLocalChecked();
  function->SetName(Nan::New(name).ToLocalChecked());
  return function;
}

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "openSHM", OpenSHM);
  Nan::SetMethod(target, "sizeSHM", SizeSHM);
  Nan::SetMethod(target, "writeSHM", WriteSHM);
  Nan::SetMethod(target, "deleteSHM", DeleteSHM);
  Nan::SetMethod(target, "closeSHM", CloseSHM);
  Nan::SetMethod(target, "lastErrorSHM", LastErrorSHM);
  Local<v8::Function> read_into = NewFunction(ReadIntoSHM, "readIntoSHM");
  Nan::Set(target, Nan::New("readIntoSHM").ToLocalChecked(), read_into);
  Nan::SetMethod(target, "infoSHM", InfoSHM);
  Nan::SetMethod(target, "viewSHM", ViewSHM);
  Nan::SetMethod(target, "statSHM", StatSHM);
  Nan::SetMethod(target, "statKeySHM", StatKeySHM);
  Nan::SetMethod(target, "removeKeySHM", RemoveKeySHM);
  Nan::SetMethod(target, "ftokSHM", FtokSHM);

  Local<v8::Function> factory =
      Nan::RunScript(Nan::CompileScript(Nan::New(kReadSHMSource).ToLocalChecked()).ToLocalChecked())
          .ToLocalChecked()
          .As<v8::Function>();
  Local<Value> buffer =
      Nan::Get(Nan::GetCurrentContext()->Global(), Nan::New("Buffer").ToLocalChecked())
          .ToLocalChecked();
  Local<Value> args[] = {NewFunction(ReadLength, "readLength"), read_into, buffer};
  Local<Value> read_shm =
      Nan::Call(factory, Nan::GetCurrentContext()->Global(), 3, args).ToLocalChecked();
  Nan::Set(target, Nan::New("readSHM").ToLocalChecked(), read_shm);
}

}  // namespace

NAN_MODULE_WORKER_ENABLED(shm, Init)
