/*
 * shm.cc: the addon's start-up, and the original six functions of the 2013
 * README (openSHM, sizeSHM, writeSHM, readSHM, deleteSHM, closeSHM) with
 * lastErrorSHM, glued to shmop.c with nan.
 *
 * Contract of the original six: operating-system failures return 0 and leave
 * the reason for lastErrorSHM(); misuse throws TypeError/RangeError/Error with
 * a Node-style `code` (read by src/shm-args.cc). The rest of the glue lives in
 * src/shm-*.cc, one file per area (src/shm.h lists them); NAN_MODULE_INIT at
 * the bottom gathers every area's exports.
 */
#include <nan.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "read-shm.js.h" // kReadSHMSource: lib/read-shm.js, embedded at build time
#include "src/shm.h"

namespace shm {

namespace {

// ==== The last failure of this thread (lastErrorSHM) ====

// Kept as plain data, so that it outlives any V8 handle scope; the Error is
// made when asked for. `what` is a static string.
struct LastFailure {
  int status;          // 0 (none yet), -errno, or SHMOP_EBADHANDLE
  const char *syscall; // "shmget", "shmctl", "shmat"
  const char *what;    // what could not be done, worded as PHP's warnings
  int32_t key;
  double handle; // for SHMOP_EBADHANDLE
};

thread_local LastFailure last_failure = {0, nullptr, nullptr, 0, 0};

// Why a stage of opening fails, worded as PHP's warnings are.
const char *OpenStage(const char *failed_call) {
  if (strcmp(failed_call, "shmctl") == 0) return "unable to get shared memory segment information";
  if (strcmp(failed_call, "shmat") == 0) return "unable to attach to shared memory segment";
  return "unable to attach or create shared memory segment";
}

// lastErrorSHM()'s Error, worded as it always was ("CODE: what, key 0x... (n):
// syscall: strerror"), with code, errno, syscall, key and reason as fields:
// lib/segment.js's open() words its ShmError from those.
Local<Value> LastFailureError(const LastFailure &failure) {
  if (failure.status == SHMOP_EBADHANDLE) {
    return CodedError(kError, "ERR_SHM_BAD_HANDLE",
                      "Handle " + NumberText(failure.handle) + " is not an open segment");
  }
  int err = -failure.status;
  const char *code = ErrnoName(err);
  char key[48];
  snprintf(key, sizeof key, ", key 0x%08x (%d)", static_cast<uint32_t>(failure.key), failure.key);
  Local<Value> error = CodedError(kError, code,
                                  std::string(code) + ": " + failure.what + key + ": " +
                                      failure.syscall + ": " + strerror(err));
  auto set = [&error](const char *name, Local<Value> value) {
    Nan::Set(error.As<Object>(), Nan::New(name).ToLocalChecked(), value);
  };
  set("errno", Nan::New(-err));
  set("syscall", Nan::New(failure.syscall).ToLocalChecked());
  set("key", Nan::New(failure.key));
  set("reason", Nan::New(strerror(err)).ToLocalChecked());
  return error;
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
  Scratch text;
  Bytes bytes;
  if (!DataArg(info[1], &text, &bytes)) return;
  // Negative offsets go to shmop_write, which checks read-only first (as PHP).
  if (!IntegerArg(info[2], "offset", -kMaxSafeInteger, kMaxSafeInteger, nullptr, &offset)) return;
  length = static_cast<double>(bytes.length);
  if (!info[3]->IsUndefined() &&
      !IntegerArg(info[3], "data_len", 0, length, "the data's length", &length)) {
    return;
  }
  Scratch aside;
  const unsigned char *data = bytes.data;
  if (!Unaliased(&data, static_cast<uint64_t>(length), &aside)) return;
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

// readSHM is lib/read-shm.js over readLength, readIntoSHM and sizeSHM: the same
// text lib/legacy.js requires, so that this file alone is the drop-in.
Local<Value> MakeReadSHM(Local<v8::Function> read_into) {
  Local<v8::Context> context = Nan::GetCurrentContext();
  Local<v8::Function> wrapper =
      Nan::RunScript(Nan::CompileScript(Nan::New(kReadSHMSource).ToLocalChecked()).ToLocalChecked())
          .ToLocalChecked()
          .As<v8::Function>();
  Local<Value> module[] = {Nan::New<Object>()};
  Local<v8::Function> factory =
      Nan::Call(wrapper, context->Global(), 1, module).ToLocalChecked().As<v8::Function>();
  Local<Value> buffer =
      Nan::Get(context->Global(), Nan::New("Buffer").ToLocalChecked()).ToLocalChecked();
  Local<Value> args[] = {NewFunction(ReadLength, "readLength"), read_into,
                         NewFunction(SizeSHM, "sizeSHM"), buffer,
                         Nan::New(static_cast<double>(node::Buffer::kMaxLength))};
  return Nan::Call(factory, context->Global(), 5, args).ToLocalChecked();
}

} // namespace

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "openSHM", OpenSHM);
  Nan::SetMethod(target, "sizeSHM", SizeSHM);
  Nan::SetMethod(target, "writeSHM", WriteSHM);
  Nan::SetMethod(target, "deleteSHM", DeleteSHM);
  Nan::SetMethod(target, "closeSHM", CloseSHM);
  Nan::SetMethod(target, "lastErrorSHM", LastErrorSHM);
  InitErrors(target);
  InitSegments(target);
  InitSections(target);
  InitClaims(target);
  InitWaits(target);
  InitTableWaits(target);
  Local<v8::Function> read_into = Nan::Get(target, Nan::New("readIntoSHM").ToLocalChecked())
                                      .ToLocalChecked()
                                      .As<v8::Function>();
  Nan::Set(target, Nan::New("readSHM").ToLocalChecked(), MakeReadSHM(read_into));
}

} // namespace shm

NAN_MODULE_WORKER_ENABLED(shm, shm::Init)
