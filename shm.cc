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

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "sections.h"
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
#ifndef _WIN32
    default: return uv_err_name(-err);  // libuv's codes are -errno on POSIX
#else
    default: return "EUNKNOWN";
#endif
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
  double number;
  if (value->IsInt32()) {  // the usual case, and no fraction to check
    number = value.As<v8::Int32>()->Value();
  } else if (value->IsNumber()) {
    number = value.As<v8::Number>()->Value();
    // Below 2^63 an integer survives the round trip through int64_t; the
    // comparison also fails for NaN and the infinities.
    bool integer = std::fabs(number) < 9.2e18 &&
                   static_cast<double>(static_cast<int64_t>(number)) == number;
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

// A signed JavaScript integer as the unsigned value shmop.c compares: a negative
// one becomes huge, so shmop.c rejects it at the same step as PHP does.
uint64_t Unsigned(double value) { return static_cast<uint64_t>(static_cast<int64_t>(value)); }

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

// ==== Live views (viewSHM) ====

// A view can come back as the data of a write, or the target of a read, on its
// own segment, through the same mapping or another one of the same segment
// (one page at two addresses): memcpy() would then mix old and new bytes. So a
// copy whose user-side buffer lies in any live view goes through a buffer in
// between. Calls skip the lock while there are no views.
struct ViewRange {
  const unsigned char *addr;
  uint64_t size;
};
std::mutex views_mutex;
std::vector<ViewRange> views;  // guarded by views_mutex
std::atomic<size_t> view_count{0};

bool InAView(const unsigned char *bytes, uint64_t length) {
  if (length == 0 || view_count.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard<std::mutex> lock(views_mutex);
  for (const ViewRange &view : views) {
    if (bytes < view.addr + view.size && view.addr < bytes + length) return true;
  }
  return false;
}

// The bytes to write, copied aside when they lie in a view (see InAView).
const unsigned char *Unaliased(const unsigned char *bytes, uint64_t length,
                               std::vector<unsigned char> *aside) {
  if (!InAView(bytes, length)) return bytes;
  aside->assign(bytes, bytes + length);
  return aside->data();
}

// Reads data to write: a string (its UTF-8 bytes go to *text) or a view.
bool DataArg(Local<Value> data, std::string *text, Bytes *bytes) {
  if (data->IsArrayBufferView()) {
    *bytes = ViewBytes(data);
    return true;
  }
  if (!data->IsString()) {
    ThrowArgType("data", "of type string or an instance of Buffer, TypedArray, or DataView", data);
    return false;
  }
  *text = Utf8(data);
  *bytes = {reinterpret_cast<const unsigned char *>(text->data()), text->size()};
  return true;
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
  if (rc == SHMOP_EUNSAFE) {
    return ThrowCoded(kRangeError, "ERR_INVALID_ARG_VALUE",
                      "The \"mode\" argument must not combine SHM_HUGETLB (0o4000) with "
                      "SHM_NORESERVE (0o10000): such a segment takes its huge pages at first "
                      "touch and crashes the process when none is free. Received " +
                          NumberText(mode));
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
  std::string text;
  Bytes bytes;
  if (!DataArg(info[1], &text, &bytes)) return;
  // Negative offsets go to shmop_write, which checks read-only first (as PHP).
  if (!IntegerArg(info[2], "offset", -kMaxSafeInteger, kMaxSafeInteger, nullptr, &offset)) return;
  length = static_cast<double>(bytes.length);
  if (!info[3]->IsUndefined() &&
      !IntegerArg(info[3], "data_len", 0, length, "the data's length", &length)) {
    return;
  }
  std::vector<unsigned char> aside;
  const unsigned char *data = Unaliased(bytes.data, static_cast<uint64_t>(length), &aside);
  uint64_t written = 0, size = 0;
  int rc = shmop_table_write(static_cast<int64_t>(handle), data, static_cast<uint64_t>(length),
                             Unsigned(offset), &written, &size);
  if (rc == SHMOP_EBADHANDLE) return ThrowBadHandle(handle);
  if (rc == SHMOP_EREADONLY) {
    return ThrowCoded(kError, "ERR_SHM_READ_ONLY",
                      "Handle " + NumberText(handle) +
                          " was opened read-only ('a') and cannot be written; open the segment "
                          "with 'w' or 'c' to write");
  }
  if (rc == SHMOP_EOFFSET) {
    return ThrowOutOfRange("offset", Between(0, static_cast<double>(size), "the segment size"),
                           NumberText(offset));
  }
  info.GetReturnValue().Set(static_cast<double>(written));
}

// Throws for a read span shmop.c refused (rc), worded with the segment's size.
bool SpanOk(int rc, uint64_t segment_size, double start, double count) {
  double size = static_cast<double>(segment_size);
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
  // Signs are checked by ReadSpan, start before length (as PHP).
  if (!IntegerArg(info[1], "start", -kMaxSafeInteger, kMaxSafeInteger, nullptr, &start)) return;
  if (!IntegerArg(info[2], "length", -kMaxSafeInteger, kMaxSafeInteger, nullptr, &count)) return;
  Attached seg(handle);
  if (!seg) return ThrowBadHandle(handle);
  uint64_t length;
  int rc = shmop_read_span(seg.get(), Unsigned(start), Unsigned(count), &length);
  if (!SpanOk(rc, seg->size, start, count)) return;
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
  unsigned char *into = const_cast<unsigned char *>(room.data) + static_cast<size_t>(target_offset);
  std::vector<unsigned char> aside;
  bool aliased = InAView(into, static_cast<uint64_t>(length));  // see InAView
  if (aliased) aside.resize(static_cast<size_t>(length));
  uint64_t size = 0;
  int rc = shmop_table_read(static_cast<int64_t>(handle), static_cast<uint64_t>(start),
                            static_cast<uint64_t>(length), aliased ? aside.data() : into, &size);
  if (rc == SHMOP_EBADHANDLE) return ThrowBadHandle(handle);
  if (!SpanOk(rc, size, start, length)) return;
  if (aliased) memcpy(into, aside.data(), aside.size());
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
void ReleaseView(char *data, void *seg) {
  {
    std::lock_guard<std::mutex> lock(views_mutex);
    for (auto it = views.begin(); it != views.end(); ++it) {
      if (it->addr == reinterpret_cast<unsigned char *>(data)) {
        views.erase(it);
        view_count.fetch_sub(1, std::memory_order_release);
        break;
      }
    }
  }
  shmop_table_release(static_cast<shmop_t *>(seg));
}

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
  {
    std::lock_guard<std::mutex> lock(views_mutex);
    views.push_back({seg->addr, seg->size});
    view_count.fetch_add(1, std::memory_order_release);
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
  // PHP's project id is one byte; in JavaScript, one character U+0000..U+00FF.
  // Its UTF-16 code unit comes through Nan::DecodeWrite (UCS-2, little-endian in
  // Node): v8::String::Write is gone in V8 14 (Node 26), and its successor
  // WriteV2 is missing before V8 13 (Node 24).
  Local<v8::String> project = info[1].As<v8::String>();
  unsigned char ucs2[2] = {0xff, 0xff};
  if (project->Length() == 1) {
    Nan::DecodeWrite(reinterpret_cast<char *>(ucs2), sizeof ucs2, project, Nan::UCS2);
  }
  unsigned unit = ucs2[0] | (ucs2[1] << 8);
  if (path.empty() || path.find('\0') != std::string::npos) {
    return ThrowCoded(kRangeError, "ERR_INVALID_ARG_VALUE",
                      "The \"path\" argument must be a non-empty string without NUL bytes. " +
                          Received(info[0]));
  }
  if (unit > 0xff) {
    return ThrowCoded(kRangeError, "ERR_INVALID_ARG_VALUE",
                      "The \"projectId\" argument must be a single character from '\\u0000' to "
                      "'\\u00ff' (one byte, as PHP's). " +
                          Received(info[1]));
  }
  int32_t key;
  int rc = shmop_ftok(path.c_str(), static_cast<unsigned char>(unit), &key);
  if (rc != 0) {
    Local<Value> error = OsError(rc, "ftok", "ftok() failed for '" + path + "'", nullptr);
    Nan::Set(error.As<Object>(), Nan::New("path").ToLocalChecked(), info[0]);
    return Nan::ThrowError(error);
  }
  info.GetReturnValue().Set(key);
}

// ==== Sections (lib/sections.js): the atomic operations of sections.c ====

// A section is described by a Float64Array [control, data0, data1, capacity]
// that lib/sections.js made from the table it validated; it is checked against
// the segment again on every call, so no call can reach outside the segment.
bool SectionArg(Local<Value> value, const shmop_t *seg, shmsect_t *sect) {
  if (!value->IsFloat64Array() || value.As<v8::Float64Array>()->Length() != 4) {
    ThrowArgType("section", "a Float64Array of 4 offsets", value);
    return false;
  }
  double parts[4];
  value.As<v8::Float64Array>()->CopyContents(parts, sizeof parts);
  for (double part : parts) {
    if (!(part >= 0 && part <= kMaxSafeInteger) || std::trunc(part) != part) {
      ThrowCoded(kRangeError, "ERR_OUT_OF_RANGE", "A section offset is not a byte offset");
      return false;
    }
  }
  *sect = {seg->addr, seg->size, static_cast<uint64_t>(parts[0]),
           {static_cast<uint64_t>(parts[1]), static_cast<uint64_t>(parts[2])},
           static_cast<uint64_t>(parts[3])};
  if (shmsect_check(sect) != 0) {
    ThrowCoded(kError, "ERR_SHM_CORRUPT", "The section does not lie inside its segment");
    return false;
  }
  return true;
}

// Reads the (handle, section) pair most section calls start with.
class SectionCall {
 public:
  explicit SectionCall(const Nan::FunctionCallbackInfo<Value> &info) : seg_(nullptr) {
    double handle;
    if (!HandleArg(info[0], &handle)) return;
    seg_ = shmop_table_acquire(static_cast<int64_t>(handle));
    if (!seg_) {
      ThrowBadHandle(handle);
      return;
    }
    if (!SectionArg(info[1], seg_, &sect_)) Drop();
  }
  ~SectionCall() { Drop(); }
  SectionCall(const SectionCall &) = delete;
  SectionCall &operator=(const SectionCall &) = delete;
  bool ok() const { return seg_ != nullptr; }
  const shmsect_t *sect() const { return &sect_; }
  shmop_t *seg() const { return seg_; }
  // Keeps the reference (for a wait that outlives the call).
  shmop_t *Take() {
    shmop_t *seg = seg_;
    seg_ = nullptr;
    return seg;
  }

 private:
  void Drop() {
    if (seg_) shmop_table_release(seg_);
    seg_ = nullptr;
  }
  shmop_t *seg_;
  shmsect_t sect_;
};

void ThrowCorrupt() {
  ThrowCoded(kError, "ERR_SHM_CORRUPT",
             "The section's control block holds values no writer writes: the segment is corrupt");
}

// The table was replaced or removed by its manager (lib/sections.js follows or explains).
void ThrowRetired(const shmsect_t *sect) {
  uint32_t how = shmsect_retired(sect);
  if (how != SHMSECT_REPLACED && how != SHMSECT_REMOVED) {
    return ThrowCoded(kError, "ERR_SHM_CORRUPT",
                      "The section's retired word holds a value no manager writes: the segment is corrupt");
  }
  bool removed = how == SHMSECT_REMOVED;
  Local<Value> error = CodedError(kError, "ERR_SHM_TABLE_RETIRED",
                                  removed ? "The section table was removed" : "The section table was replaced");
  Nan::Set(error.As<Object>(), Nan::New("retired").ToLocalChecked(),
           Nan::New(removed ? "removed" : "replaced").ToLocalChecked());
  Nan::ThrowError(error);
}

// ---- Claims held by this thread's JavaScript environment. Released when it
// is torn down (a worker that ends, however it ends), and by a table's close()
// or collection (sectionReleaseAll), so that a thread's claims die with it.

struct HeldClaim {
  double handle;  // the table's segment handle, as JavaScript knows it
  shmop_t *seg;   // a reference: the mapping stays while the claim is held
  shmsect_t sect;
  int lock;
};

struct HeldClaims {
  std::vector<HeldClaim> list;
};

thread_local HeldClaims *held_claims = nullptr;

// Gives back the claims of `handle` (or all of them) held here.
void ReleaseHeld(HeldClaims *held, bool all, double handle) {
  auto &list = held->list;
  for (size_t i = list.size(); i-- > 0;) {
    if (!all && list[i].handle != handle) continue;
    HeldClaim claim = list[i];
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
    shmsect_release(&claim.sect, shmsect_self(), claim.lock);
    shmop_table_release(claim.seg);
  }
}

void ReleaseHeldAtCleanup(void *arg) {
  HeldClaims *held = static_cast<HeldClaims *>(arg);
  ReleaseHeld(held, true, 0);
  if (held_claims == held) held_claims = nullptr;
  delete held;
}

HeldClaims *ThisThreadsClaims() {
  if (!held_claims) {
    held_claims = new HeldClaims();
    node::AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), ReleaseHeldAtCleanup, held_claims);
  }
  return held_claims;
}

/** sectionVersion(handle, section) -> the committed version (0: none yet). */
NAN_METHOD(SectionVersion) {
  SectionCall call(info);
  if (!call.ok()) return;
  if (shmsect_retired(call.sect()) != SHMSECT_LIVE) return ThrowRetired(call.sect());
  info.GetReturnValue().Set(static_cast<double>(shmsect_version(call.sect())));
}

/**
 * sectionRead(handle, section, target, out) -> true when the committed payload
 * was copied into target, false when it needs more room (out[1] says how much).
 * out (Float64Array(4)) gets version, length, published (us), writer pid.
 */
NAN_METHOD(SectionRead) {
  SectionCall call(info);
  if (!call.ok()) return;
  if (!info[2]->IsArrayBufferView()) {
    return ThrowArgType("target", "an instance of Buffer, TypedArray, or DataView", info[2]);
  }
  if (!info[3]->IsFloat64Array() || info[3].As<v8::Float64Array>()->Length() != 4) {
    return ThrowArgType("out", "a Float64Array of 4", info[3]);
  }
  Bytes room = ViewBytes(info[2]);
  unsigned char *into = const_cast<unsigned char *>(room.data);
  std::vector<unsigned char> aside;
  bool aliased = InAView(into, room.length);  // see InAView
  if (aliased) aside.resize(room.length);
  shmsect_snapshot_t snap;
  int rc = shmsect_read(call.sect(), aliased ? aside.data() : into, room.length, &snap);
  if (rc == SHMSECT_ECORRUPT) return ThrowCorrupt();
  if (rc == SHMSECT_ERETIRED) return ThrowRetired(call.sect());
  if (aliased && rc == 0) memcpy(into, aside.data(), static_cast<size_t>(snap.length));
  double out[4] = {static_cast<double>(snap.version), static_cast<double>(snap.length),
                   static_cast<double>(snap.published_us), static_cast<double>(snap.writer_pid)};
  Local<v8::Float64Array> array = info[3].As<v8::Float64Array>();
  memcpy(static_cast<char *>(array->Buffer()->Data()) + array->ByteOffset(), out, sizeof out);
  info.GetReturnValue().Set(rc == 0);
}

/** sectionPublish(handle, section, data) -> the new version. */
NAN_METHOD(SectionPublish) {
  SectionCall call(info);
  if (!call.ok()) return;
  std::string text;
  Bytes bytes;
  if (!DataArg(info[2], &text, &bytes)) return;
  if (call.seg()->readonly) {
    return ThrowCoded(kError, "ERR_SHM_READ_ONLY", "A table attached read-only cannot publish");
  }
  std::vector<unsigned char> aside;
  const unsigned char *data = Unaliased(bytes.data, bytes.length, &aside);
  uint64_t version = 0;
  int rc = shmsect_publish(call.sect(), shmsect_self(), data, bytes.length, &version);
  if (rc == SHMSECT_ERETIRED) return ThrowRetired(call.sect());
  if (rc == SHMSECT_ENOTWRITER) {
    return ThrowCoded(kError, "ERR_SHM_NOT_WRITER",
                      "This process does not hold the section's claim; claim() it before publishing");
  }
  if (rc == SHMSECT_ETOOSMALL) {
    return ThrowOutOfRange("data", Between(0, static_cast<double>(call.sect()->capacity),
                                           "the section's capacity, in bytes"),
                           NumberText(static_cast<double>(bytes.length)) + " bytes");
  }
  info.GetReturnValue().Set(static_cast<double>(version));
}

/**
 * sectionClaim(handle, section, lock, wakes) -> true, or the pid the claim
 * word names while another holds the claim lock (0: none written yet).
 */
NAN_METHOD(SectionClaim) {
  SectionCall call(info);
  if (!call.ok()) return;
  double lock;
  if (!IntegerArg(info[2], "lock", -1, 2147483647.0, nullptr, &lock)) return;
  if (call.seg()->readonly) {
    return ThrowCoded(kError, "ERR_SHM_READ_ONLY", "A table attached read-only cannot claim a section");
  }
  uint64_t holder = 0;
  int rc = shmsect_claim(call.sect(), shmsect_self(), info[3]->IsTrue(), static_cast<int>(lock), &holder);
  if (rc == SHMSECT_ERETIRED) return ThrowRetired(call.sect());
  if (rc == SHMSECT_EBUSY) return info.GetReturnValue().Set(static_cast<double>(holder >> 32));
  if (rc != 0) return Nan::ThrowError(OsError(rc, "semop", "unable to take the claim lock", nullptr));
  double handle = info[0].As<v8::Number>()->Value();
  ThisThreadsClaims()->list.push_back({handle, call.seg(), *call.sect(), static_cast<int>(lock)});
  call.Take();  // the claim keeps the reference
  info.GetReturnValue().Set(true);
}

/** sectionRelease(handle, section) -> true, or false when this thread held no claim on it. */
NAN_METHOD(SectionRelease) {
  SectionCall call(info);
  if (!call.ok()) return;
  double handle = info[0].As<v8::Number>()->Value();
  if (held_claims) {
    auto &list = held_claims->list;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->handle == handle && it->sect.control == call.sect()->control) {
        HeldClaim claim = *it;
        list.erase(it);
        shmsect_release(&claim.sect, shmsect_self(), claim.lock);
        shmop_table_release(claim.seg);
        return info.GetReturnValue().Set(true);
      }
    }
  }
  info.GetReturnValue().Set(false);
}

/** sectionReleaseAll(handle) -> undefined; gives back every claim this thread holds through handle. */
NAN_METHOD(SectionReleaseAll) {
  double handle;
  if (!HandleArg(info[0], &handle)) return;
  if (held_claims) ReleaseHeld(held_claims, false, handle);
}

/** sectionClaimant(handle, section) -> { pid, alive, self } of the claim, or null. */
NAN_METHOD(SectionClaimant) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t claim = shmsect_claimant(call.sect());
  if (claim == 0) return info.GetReturnValue().SetNull();
  Local<Object> result = Nan::New<Object>();
  Nan::Set(result, Nan::New("pid").ToLocalChecked(), Nan::New(static_cast<double>(claim >> 32)));
  Nan::Set(result, Nan::New("alive").ToLocalChecked(), Nan::New<v8::Boolean>(shmsect_alive(claim) != 0));
  Nan::Set(result, Nan::New("self").ToLocalChecked(), Nan::New<v8::Boolean>(claim == shmsect_self()));
  info.GetReturnValue().Set(result);
}

// Reads a wait's (sinceVersion, timeout) arguments at info[2] and info[3]; an
// undefined or infinite timeout is no limit (-1).
bool WaitArgs(const Nan::FunctionCallbackInfo<Value> &info, uint64_t *since, int64_t *timeout_ms) {
  double number;
  if (!IntegerArg(info[2], "sinceVersion", 0, kMaxSafeInteger, nullptr, &number)) return false;
  *since = static_cast<uint64_t>(number);
  Local<Value> timeout = info[3];
  if (timeout->IsUndefined() || (timeout->IsNumber() && timeout.As<v8::Number>()->Value() == INFINITY)) {
    *timeout_ms = -1;
    return true;
  }
  if (!IntegerArg(timeout, "timeout", 0, kMaxSafeInteger, nullptr, &number)) return false;
  *timeout_ms = static_cast<int64_t>(number);
  return true;
}

/** sectionWaitSync(handle, section, since, timeoutMs) -> the version when it returned. */
NAN_METHOD(SectionWaitSync) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since, version = 0;
  int64_t timeout_ms;
  if (!WaitArgs(info, &since, &timeout_ms)) return;
  if (shmsect_wait(call.sect(), since, timeout_ms, nullptr, &version) == SHMSECT_ERETIRED) {
    return ThrowRetired(call.sect());
  }
  info.GetReturnValue().Set(static_cast<double>(version));
}

// ---- Asynchronous waits, two ways. On Linux 6.7+ the JavaScript thread's own
// event loop sleeps on the futex through an io_uring whose fd it polls: a
// publish wakes it directly, as a socket would. Elsewhere (or when io_uring is
// unavailable, or NODEJS_SHM_WAIT_THREADS=1) each wait runs shmsect_wait on a
// helper thread, kept for reuse, which reports through a uv_async_t: two
// wake-ups instead of one.

struct PendingWait {
  shmop_t *seg;  // a reference: the mapping stays while the wait reads it
  shmsect_t sect;
  shmsect_wait_t state;
  volatile int cancel;
  uint64_t version;
  double id;
  Nan::Callback *callback;
  Nan::AsyncResource *resource;
};

struct WaitRoom;

// A helper thread: runs one wait at a time, then waits for the next.
struct Helper {
  WaitRoom *room;
  uv_thread_t thread;
  std::condition_variable work;
  PendingWait *job = nullptr;  // guarded by room->mutex
  bool quit = false;           // guarded by room->mutex
};

// One per JavaScript thread (main or worker) that waits.
struct WaitRoom {
  uv_async_t async;                     // finished waits to report (any thread)
  shmsect_ring_t *ring = nullptr;       // the io_uring, or null: helper threads
  uv_poll_t poll;                       // the ring's fd in the event loop
  int open_handles = 0;                 // closed at environment cleanup
  std::mutex mutex;
  std::vector<PendingWait *> running;   // guarded by mutex
  std::vector<PendingWait *> finished;  // guarded by mutex; reported by ReportFinished
  std::vector<Helper *> idle;           // guarded by mutex
  std::vector<Helper *> helpers;        // guarded by mutex: all alive
  std::vector<Helper *> leaving;        // guarded by mutex: ended, to be joined
  double last_id = 0;
};

thread_local WaitRoom *wait_room = nullptr;

const size_t kIdleHelpers = 16;  // more idle helpers than this exit

void FreeWait(PendingWait *wait) {
  shmop_table_release(wait->seg);
  delete wait->callback;
  delete wait->resource;
  delete wait;
}

// Moves a wait from running to finished (room->mutex held).
void Finish(WaitRoom *room, PendingWait *wait) {
  auto &running = room->running;
  running.erase(std::find(running.begin(), running.end(), wait));
  room->finished.push_back(wait);
}

// Keeps the event loop alive exactly while waits are pending (loop thread).
void UpdateRefs(WaitRoom *room) {
  bool busy = !room->running.empty() || !room->finished.empty();
  auto set = [busy](uv_handle_t *handle) { busy ? uv_ref(handle) : uv_unref(handle); };
  set(reinterpret_cast<uv_handle_t *>(&room->async));
  if (room->ring) set(reinterpret_cast<uv_handle_t *>(&room->poll));
}

void HelperMain(void *arg) {
  Helper *helper = static_cast<Helper *>(arg);
  WaitRoom *room = helper->room;
  std::unique_lock<std::mutex> lock(room->mutex);
  for (;;) {
    helper->work.wait(lock, [helper] { return helper->job || helper->quit; });
    if (!helper->job) return;  // quit
    PendingWait *wait = helper->job;
    lock.unlock();
    shmsect_wait(&wait->sect, wait->state.since, wait->state.timeout_ms, &wait->cancel,
                 &wait->version);
    lock.lock();
    helper->job = nullptr;
    Finish(room, wait);
    if (!helper->quit && room->idle.size() >= kIdleHelpers) {  // enough kept: this one leaves
      auto &helpers = room->helpers;
      helpers.erase(std::find(helpers.begin(), helpers.end(), helper));
      room->leaving.push_back(helper);
      helper->quit = true;
    }
    uv_async_send(&room->async);
    if (helper->quit) return;
    room->idle.push_back(helper);
  }
}

// Gives a wait to a helper thread (room->mutex held). Returns false if none can start.
bool StartOnHelper(WaitRoom *room, PendingWait *wait) {
  Helper *helper;
  if (!room->idle.empty()) {
    helper = room->idle.back();
    room->idle.pop_back();
  } else {
    helper = new Helper();
    helper->room = room;
    uv_thread_options_t options;
    options.flags = UV_THREAD_HAS_STACK_SIZE;
    options.stack_size = 256 * 1024;
    if (uv_thread_create_ex(&helper->thread, &options, HelperMain, helper) != 0) {
      delete helper;
      return false;
    }
    room->helpers.push_back(helper);
  }
  helper->job = wait;
  helper->work.notify_one();
  return true;
}

// One step of a wait on the ring (room->mutex held): over, or asleep again.
void RingStep(WaitRoom *room, PendingWait *wait) {
  uint32_t expected;
  uint64_t slice;
  if (shmsect_wait_step(&wait->sect, &wait->state, wait->cancel, &wait->version, &expected, &slice)) {
    Finish(room, wait);
  } else if (shmsect_ring_sleep(room->ring, shmsect_futex_word(&wait->sect), expected, slice,
                                static_cast<uint64_t>(wait->id)) != 0 &&
             !StartOnHelper(room, wait)) {
    Finish(room, wait);  // cannot sleep at all: report the version as it is
  }
}

// On the JavaScript thread: hands every finished wait its version, and joins
// helpers that left.
void ReportFinished(WaitRoom *room) {
  std::vector<PendingWait *> finished;
  std::vector<Helper *> leaving;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    finished.swap(room->finished);
    leaving.swap(room->leaving);
    UpdateRefs(room);
  }
  for (Helper *helper : leaving) {
    uv_thread_join(&helper->thread);
    delete helper;
  }
  Nan::HandleScope scope;
  for (PendingWait *wait : finished) {
    // The mapping is still referenced: whether the wait ended because the table retired.
    uint32_t retired = shmsect_retired(&wait->sect);
    Local<Value> argv[] = {Nan::New(static_cast<double>(wait->version)), Nan::New(retired)};
    wait->callback->Call(2, argv, wait->resource);
    FreeWait(wait);
  }
}

void WaitsFinished(uv_async_t *async) { ReportFinished(static_cast<WaitRoom *>(async->data)); }

// The ring's fd is readable: some sleeps ended.
void RingReady(uv_poll_t *poll, int, int) {
  WaitRoom *room = static_cast<WaitRoom *>(poll->data);
  uint64_t tags[64];
  int count;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    while ((count = shmsect_ring_reap(room->ring, tags, 64)) > 0) {
      for (int i = 0; i < count; i++) {
        for (PendingWait *wait : room->running) {
          if (static_cast<uint64_t>(wait->id) == tags[i]) {
            RingStep(room, wait);
            break;
          }
        }
      }
    }
  }
  ReportFinished(room);
}

// The thread's JavaScript environment is going away (a worker ends): stop
// every wait and helper, then close the handles.
void CloseWaitRoom(void *arg) {
  WaitRoom *room = static_cast<WaitRoom *>(arg);
  std::vector<Helper *> helpers;
  {
    std::lock_guard<std::mutex> lock(room->mutex);
    for (PendingWait *wait : room->running) {
      wait->cancel = 1;
      shmsect_wake(&wait->sect);
    }
    for (Helper *helper : room->helpers) {
      helper->quit = true;
      helper->work.notify_one();
    }
    helpers.swap(room->helpers);
    helpers.insert(helpers.end(), room->leaving.begin(), room->leaving.end());
    room->leaving.clear();
  }
  for (Helper *helper : helpers) {
    uv_thread_join(&helper->thread);
    delete helper;
  }
  // Helpers are gone; what is still running sleeps on the ring, which closing ends.
  for (PendingWait *wait : room->running) FreeWait(wait);
  for (PendingWait *wait : room->finished) FreeWait(wait);
  room->running.clear();
  room->finished.clear();
  auto closed = [](uv_handle_t *handle) {
    WaitRoom *room = static_cast<WaitRoom *>(handle->data);
    if (--room->open_handles == 0) delete room;
  };
  if (room->ring) {
    uv_poll_stop(&room->poll);
    uv_close(reinterpret_cast<uv_handle_t *>(&room->poll), closed);
    shmsect_ring_close(room->ring);
  }
  uv_close(reinterpret_cast<uv_handle_t *>(&room->async), closed);
  if (wait_room == room) wait_room = nullptr;
}

WaitRoom *ThisThreadsWaitRoom() {
  if (!wait_room) {
    WaitRoom *room = new WaitRoom();
    uv_loop_t *loop = Nan::GetCurrentEventLoop();
    uv_async_init(loop, &room->async, WaitsFinished);
    room->async.data = room;
    room->open_handles = 1;
    const char *threads = getenv("NODEJS_SHM_WAIT_THREADS");
    if (!(threads && strcmp(threads, "1") == 0) && shmsect_ring_open(&room->ring) == 0) {
      if (uv_poll_init(loop, &room->poll, shmsect_ring_fd(room->ring)) == 0) {
        room->poll.data = room;
        room->open_handles++;
        uv_poll_start(&room->poll, UV_READABLE, RingReady);
      } else {
        shmsect_ring_close(room->ring);
        room->ring = nullptr;
      }
    }
    UpdateRefs(room);
    node::AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), CloseWaitRoom, room);
    wait_room = room;
  }
  return wait_room;
}

/**
 * sectionWait(handle, section, since, timeoutMs, callback) -> an id for
 * sectionWaitCancel; callback(version) runs when the version differs from
 * since, the timeout passes, or the wait is cancelled.
 */
NAN_METHOD(SectionWait) {
  SectionCall call(info);
  if (!call.ok()) return;
  uint64_t since;
  int64_t timeout_ms;
  if (!WaitArgs(info, &since, &timeout_ms)) return;
  if (!info[4]->IsFunction()) return ThrowArgType("callback", "of type function", info[4]);
  WaitRoom *room = ThisThreadsWaitRoom();
  std::lock_guard<std::mutex> lock(room->mutex);
  PendingWait *wait = new PendingWait{call.Take(), *call.sect(), {}, 0, 0, ++room->last_id,
                                      new Nan::Callback(info[4].As<v8::Function>()),
                                      new Nan::AsyncResource("nodejs-shm:wait")};
  shmsect_wait_start(&wait->state, since, timeout_ms);
  room->running.push_back(wait);
  if (room->ring) {
    RingStep(room, wait);
  } else if (!StartOnHelper(room, wait)) {
    room->running.pop_back();
    FreeWait(wait);
    return ThrowCoded(kError, "ERR_SHM_WAIT_FAILED", "Could not start a thread to wait on");
  }
  if (!room->finished.empty()) uv_async_send(&room->async);  // over at once
  UpdateRefs(room);
  info.GetReturnValue().Set(wait->id);
}

/** sectionWaitCancel(id) -> makes a pending wait return now (its callback still runs). */
NAN_METHOD(SectionWaitCancel) {
  double id;
  if (!IntegerArg(info[0], "id", 0, kMaxSafeInteger, nullptr, &id)) return;
  if (!wait_room) return;
  std::lock_guard<std::mutex> lock(wait_room->mutex);
  for (PendingWait *wait : wait_room->running) {
    if (wait->id == id) {
      wait->cancel = 1;
      shmsect_wake(&wait->sect);
    }
  }
}

/** sectionLockCreate(key, mode) -> the id of a new claim lock (-1 where there are none: Windows). */
NAN_METHOD(SectionLockCreate) {
  int32_t key;
  double mode;
  if (!KeyArg(info[0], &key)) return;
  if (!IntegerArg(info[1], "mode", 0, 0777, nullptr, &mode)) return;
  int id = -1;
  int rc = shmsect_lock_create(key, static_cast<int>(mode), &id);
  if (rc != 0) return Nan::ThrowError(OsError(rc, "semget", "unable to create a claim lock", &key));
  info.GetReturnValue().Set(id);
}

/**
 * sectionLockCheck(id, key, uid, cuid) -> null when the set with this id is
 * the claim lock the table records (key, 3 semaphores, owner and creator);
 * else why not: 'foreign' or the errno name (EINVAL: no such set).
 */
NAN_METHOD(SectionLockCheck) {
  double id, uid, cuid;
  int32_t key;
  if (!IntegerArg(info[0], "id", -2147483648.0, 2147483647.0, nullptr, &id)) return;
  if (!KeyArg(info[1], &key)) return;
  if (!IntegerArg(info[2], "uid", 0, 4294967295.0, nullptr, &uid)) return;
  if (!IntegerArg(info[3], "cuid", 0, 4294967295.0, nullptr, &cuid)) return;
  int rc = shmsect_lock_check(static_cast<int>(id), key, static_cast<uint32_t>(uid), static_cast<uint32_t>(cuid));
  if (rc == 0) return info.GetReturnValue().SetNull();
  info.GetReturnValue().Set(Nan::New(rc == SHMSECT_EFOREIGN ? "foreign" : ErrnoName(-rc)).ToLocalChecked());
}

/** sectionLockRemove(id) -> undefined; deletes a claim lock. */
NAN_METHOD(SectionLockRemove) {
  double id;
  if (!IntegerArg(info[0], "id", -1, 2147483647.0, nullptr, &id)) return;
  int rc = shmsect_lock_remove(static_cast<int>(id));
  if (rc != 0) return Nan::ThrowError(OsError(rc, "semctl", "unable to remove a claim lock", nullptr));
}

/**
 * sectionRetire(handle, section, how, target, out) -> as sectionRead, for the
 * manager: marks the section retired (1 replaced, 2 removed), copies its last
 * payload (the carry-over) and wakes its waiters.
 */
NAN_METHOD(SectionRetire) {
  SectionCall call(info);
  if (!call.ok()) return;
  double how;
  if (!IntegerArg(info[2], "how", 1, 2, nullptr, &how)) return;
  if (!info[3]->IsArrayBufferView()) {
    return ThrowArgType("target", "an instance of Buffer, TypedArray, or DataView", info[3]);
  }
  if (!info[4]->IsFloat64Array() || info[4].As<v8::Float64Array>()->Length() != 4) {
    return ThrowArgType("out", "a Float64Array of 4", info[4]);
  }
  if (call.seg()->readonly) {
    return ThrowCoded(kError, "ERR_SHM_READ_ONLY", "A table attached read-only cannot be retired");
  }
  Bytes room = ViewBytes(info[3]);
  shmsect_snapshot_t snap;
  int rc = shmsect_retire(call.sect(), static_cast<uint32_t>(how), const_cast<unsigned char *>(room.data),
                          room.length, &snap);
  double out[4] = {static_cast<double>(snap.version), static_cast<double>(snap.length),
                   static_cast<double>(snap.published_us), static_cast<double>(snap.writer_pid)};
  Local<v8::Float64Array> array = info[4].As<v8::Float64Array>();
  memcpy(static_cast<char *>(array->Buffer()->Data()) + array->ByteOffset(), out, sizeof out);
  info.GetReturnValue().Set(rc == 0);
}

// readSHM allocates its Buffer in JavaScript: Buffer.allocUnsafe() takes small
// Buffers from Node's pool, several times cheaper than making one here. A
// handle's size never changes and handles are never reused, so a size learnt
// once lets the usual read be checked here and done in one native call;
// anything else goes through readLength, which checks and words errors as
// every other call does. readInto checks the handle and the span again.
const char kReadSHMSource[] =
    "(function (readLength, readInto, sizeOf, Buffer, maxLength) {\n"
    "  'use strict';\n"
    "  const sizes = new Map();\n"
    "  return function readSHM(handle, start, length) {\n"
    "    const size = sizes.get(handle);\n"
    "    let n;\n"
    "    // typeof first: arithmetic on an object would run its valueOf.\n"
    "    if (typeof start === 'number' && typeof length === 'number' && size !== undefined &&\n"
    "        Number.isInteger(start) && Number.isInteger(length) && start >= 0 && length >= 0 &&\n"
    "        start <= size && length <= size - start && (n = length || size - start) <= maxLength) {\n"
    "      // checked here\n"
    "    } else {\n"
    "      n = readLength(handle, start, length);\n"
    "      if (sizes.size >= 4096) sizes.clear();\n"
    "      sizes.set(handle, sizeOf(handle));\n"
    "    }\n"
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
  Nan::SetMethod(target, "sectionVersion", SectionVersion);
  Nan::SetMethod(target, "sectionRead", SectionRead);
  Nan::SetMethod(target, "sectionPublish", SectionPublish);
  Nan::SetMethod(target, "sectionClaim", SectionClaim);
  Nan::SetMethod(target, "sectionRelease", SectionRelease);
  Nan::SetMethod(target, "sectionClaimant", SectionClaimant);
  Nan::SetMethod(target, "sectionWaitSync", SectionWaitSync);
  Nan::SetMethod(target, "sectionWait", SectionWait);
  Nan::SetMethod(target, "sectionWaitCancel", SectionWaitCancel);
  Nan::SetMethod(target, "sectionReleaseAll", SectionReleaseAll);
  Nan::SetMethod(target, "sectionLockCreate", SectionLockCreate);
  Nan::SetMethod(target, "sectionLockCheck", SectionLockCheck);
  Nan::SetMethod(target, "sectionLockRemove", SectionLockRemove);
  Nan::SetMethod(target, "sectionRetire", SectionRetire);

  Local<v8::Function> factory =
      Nan::RunScript(Nan::CompileScript(Nan::New(kReadSHMSource).ToLocalChecked()).ToLocalChecked())
          .ToLocalChecked()
          .As<v8::Function>();
  Local<Value> buffer =
      Nan::Get(Nan::GetCurrentContext()->Global(), Nan::New("Buffer").ToLocalChecked())
          .ToLocalChecked();
  Local<Value> args[] = {NewFunction(ReadLength, "readLength"), read_into,
                         NewFunction(SizeSHM, "sizeSHM"), buffer,
                         Nan::New(static_cast<double>(node::Buffer::kMaxLength))};
  Local<Value> read_shm =
      Nan::Call(factory, Nan::GetCurrentContext()->Global(), 5, args).ToLocalChecked();
  Nan::Set(target, Nan::New("readSHM").ToLocalChecked(), read_shm);
}

}  // namespace

NAN_MODULE_WORKER_ENABLED(shm, Init)
