/*
 * shm.h: what the glue files share (shm.cc and src/shm-*.cc).
 *
 * The glue is the only V8-aware layer: every *.cc file converts between
 * JavaScript values and the plain C of shmop.c and sections.c, which know
 * nothing of Node. Each area has one file and one Init* function that
 * NAN_MODULE_INIT in shm.cc calls:
 *   src/shm-args.cc      argument readers, Node-style argument errors, Report
 *   src/shm-segments.cc  readInto, view (and the alias guard), stat, ftok, remove
 *   src/shm-sections.cc  the section natives: read, publish, waitSync, retire
 *   src/shm-claims.cc    claims (held per JavaScript thread) and claim locks
 *   src/shm-waits.cc     asynchronous section waits: rooms, groups, timeouts
 *   src/shm-wait-ring.cc     their io_uring sleeper (Linux 6.7+)
 *   src/shm-wait-helpers.cc  their helper threads, where io_uring cannot sleep
 *                        (the wait files share src/shm-waits.h)
 *   src/shm-table-waits.cc  waits on several sections of a table at once (in the same
 *                        runtime: a group with several sections)
 *
 * Arguments are never coerced, so no user code (valueOf, getters) runs while a
 * call is in progress; a segment is looked up after its arguments are read and
 * held by a reference until the call returns.
 */
#ifndef SHM_H
#define SHM_H

#include <nan.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "sections.h"
#include "shmop.h"

namespace shm {

using v8::Local;
using v8::Object;
using v8::Value;

// Largest integer a JavaScript number holds exactly.
const double kMaxSafeInteger = 9007199254740991.0;

// ==== Errors (src/shm-args.cc) ====

enum ErrorKind { kError, kTypeError, kRangeError };

// An error of the given kind with a Node-style `code` property.
Local<Value> CodedError(ErrorKind kind, const char *code, const std::string &message);
void ThrowCoded(ErrorKind kind, const char *code, const std::string &message);

// Node's wording of argument errors (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE).
std::string Utf8(Local<Value> value);
std::string NumberText(double value);
std::string Received(Local<Value> value);
std::string Between(double min, double max, const char *why);
void ThrowArgType(const char *name, const char *expected, Local<Value> value);
void ThrowOutOfRange(const char *name, const std::string &must, const std::string &received);
void ThrowBadHandle(double handle);

// The name of an errno value, as Node spells it in `code`.
const char *ErrnoName(int err);

// A failure of the Segment and sections API, as fields: `code`, and what
// explains it (errno, syscall, reason, key, the numbers involved).
// lib/errors.js makes the Error and words its message: lib/binding.js hands
// the addon that function (setErrorFactory). The original six never report
// this way: their contract is lastErrorSHM() and the messages of shm.cc.
//   return Report(kError, "ERR_SHM_READ_ONLY").Set("operation", "view").Throw();
class Report {
public:
  Report(ErrorKind kind, const char *code);
  // An operating-system failure (-errno): code ('ENOENT'), errno, syscall and
  // reason (strerror's text).
  static Report Os(int status, const char *syscall);
  Report &Set(const char *name, Local<Value> value);
  Report &Set(const char *name, double value);
  Report &Set(const char *name, const char *value);
  void Throw() const;

private:
  Local<Value> Get(const char *name) const;
  Local<Value> Bare() const;
  ErrorKind kind_; // for the addon used without lib/ only
  Local<Object> fields_;
};

// ==== Arguments (src/shm-args.cc) ====

// Reads an integer argument in [min, max]; throws and returns false otherwise.
bool IntegerArg(Local<Value> value, const char *name, double min, double max, const char *why,
                double *out);
bool HandleArg(Local<Value> value, double *handle);
// A key argument: an integer in [-2^31, 2^32), kept as its low 32 bits.
bool KeyArg(Local<Value> value, int32_t *key);

// A signed JavaScript integer as the unsigned value shmop.c compares: a negative
// one becomes huge, so shmop.c rejects it at the same step as PHP does.
inline uint64_t Unsigned(double value) {
  return static_cast<uint64_t>(static_cast<int64_t>(value));
}

// Bytes of a Buffer, TypedArray or DataView.
struct Bytes {
  const unsigned char *data;
  size_t length;
};
Bytes ViewBytes(Local<Value> view);

// Memory for a temporary copy, from malloc: running out is an error the call
// reports (ENOMEM, syscall "malloc"), never a std::bad_alloc that aborts.
class Scratch {
public:
  Scratch() = default;
  ~Scratch() { std::free(data_); }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  // Room for size bytes (what was there is lost); false after throwing ENOMEM.
  bool Reserve(uint64_t size);
  unsigned char *data() const { return data_; }
  // Hands the memory over (to a Buffer that frees it with std::free).
  unsigned char *Release() {
    unsigned char *data = data_;
    data_ = nullptr;
    return data;
  }

private:
  unsigned char *data_ = nullptr;
};

// Reads data to write: a string (its UTF-8 bytes go to *text) or a view.
bool DataArg(Local<Value> data, Scratch *text, Bytes *bytes);

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

// A native function with a name, for JavaScript that calls it (readSHM).
Local<v8::Function> NewFunction(Nan::FunctionCallback callback, const char *name);

// ==== Segments (src/shm-segments.cc) ====

// Whether a user-side range lies in a live view (see src/shm-segments.cc), and
// the bytes to write, copied aside into *aside when they do.
bool InAView(const unsigned char *bytes, uint64_t length);
// Points *bytes at the bytes to write (copied into *aside when they lie in a
// view); false after throwing ENOMEM.
bool Unaliased(const unsigned char **bytes, uint64_t length, Scratch *aside);

// readSHM's natives: the length a read returns, and the copy into a target.
NAN_METHOD(ReadLength);
NAN_METHOD(ReadIntoSHM);

// ==== Sections (src/shm-sections.cc) ====

// Reads the (handle, section) pair section calls start with, and holds the
// segment for the call (or, after Take(), for a wait that outlives it).
class SectionCall {
public:
  explicit SectionCall(const Nan::FunctionCallbackInfo<Value> &info);
  ~SectionCall() { Drop(); }
  SectionCall(const SectionCall &) = delete;
  SectionCall &operator=(const SectionCall &) = delete;
  bool ok() const { return seg_ != nullptr; }
  const shmsect_t *sect() const { return &sect_; }
  // For a wait: lets a waiter attached read-only count itself among the
  // sleepers, through a read-write mapping where it may make one.
  void CountSleepers() {
    if (seg_ && !sect_.counts) sect_.counts = shmop_writable(seg_);
  }
  shmop_t *seg() const { return seg_; }
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

// Reads a section argument (Float64Array [control, data0, data1, capacity])
// of an attached segment into *sect, checked against it; throws and returns
// false otherwise.
bool SectionArg(Local<Value> value, const shmop_t *seg, shmsect_t *sect);
// The same from its 4 numbers.
bool SectionParts(const double *parts, const shmop_t *seg, shmsect_t *sect);

// Reads a wait's (sinceVersion, timeout) arguments at info[2] and info[3]; an
// undefined or infinite timeout is no limit (-1).
bool WaitArgs(const Nan::FunctionCallbackInfo<Value> &info, uint64_t *since, int64_t *timeout_ms);
bool TimeoutArg(Local<Value> timeout, int64_t *timeout_ms);

// Blocking waits sleep in slices of this long and look up in between, so
// that a terminated worker ends within one: Terminating() says whether this
// thread's JavaScript is being terminated.
const uint64_t kTerminationSliceMs = 50;
bool Terminating();

// ERR_SHM_READ_ONLY for an operation through a segment attached read-only.
void ThrowReadOnly(const char *operation);

// ERR_SHM_TABLE_RETIRED (or ERR_SHM_CORRUPT for a retired word no manager writes).
void ThrowRetired(const shmop_t *seg, const shmsect_t *sect);

// ==== Waits on several sections (src/shm-table-waits.cc) ====

// One wait on several sections of a table: its arguments (handle, sections,
// sinceVersions at info[0..2]), the segment held while it lasts, and the
// state of shmsect_many_* (src/sections-many.c).
struct ManyWait {
  shmop_t *seg = nullptr;
  std::vector<shmsect_t> sects;
  std::vector<uint64_t> since, versions;
  std::vector<shmsect_wait_t> states;
  std::vector<uint32_t> expected;
  shmsect_many_t many;
  ManyWait() = default;
  ManyWait(const ManyWait &) = delete;
  ManyWait &operator=(const ManyWait &) = delete;
  ~ManyWait() {
    if (seg) shmop_table_release(seg);
  }
  // Reads the arguments; throws and returns false when they are wrong.
  bool Read(const Nan::FunctionCallbackInfo<Value> &info);
  void Start(int64_t timeout_ms);
  const shmsect_t *Retired() const;
  static Local<Value> VersionsOf(const std::vector<uint64_t> &versions); // a Float64Array
};

// ==== Each area's exports ====

NAN_MODULE_INIT(InitErrors);
NAN_MODULE_INIT(InitSegments);
NAN_MODULE_INIT(InitSections);
NAN_MODULE_INIT(InitClaims);
NAN_MODULE_INIT(InitWaits);
NAN_MODULE_INIT(InitTableWaits);

} // namespace shm

#endif // SHM_H
