/*
 * shm-segments.cc: the natives of one segment beyond the original six, and
 * the alias guard every copy goes through.
 *
 * readLength and readIntoSHM serve readSHM and Segment#readInto; infoSHM,
 * viewSHM and statSHM describe or expose an open segment; statKeySHM,
 * removeKeySHM and ftokSHM work by key or path without one. These throw on
 * operating-system failures (the original six report them through
 * lastErrorSHM() instead).
 */
#include <atomic>
#include <cstring>
#include <mutex>

#include "shm.h"

namespace shm {

// ==== Live views (viewSHM) ====

// A view can come back as the data of a write, or the target of a read, on its
// own segment, through the same mapping or another one of the same segment
// (one page at two addresses): memcpy() would then mix old and new bytes. So a
// copy whose user-side buffer lies in any live view goes through a buffer in
// between. Calls skip the lock while there are no views.
namespace {

struct ViewRange {
  const unsigned char *addr;
  uint64_t size;
};
std::mutex views_mutex;
std::vector<ViewRange> views; // guarded by views_mutex
std::atomic<size_t> view_count{0};

} // namespace

bool InAView(const unsigned char *bytes, uint64_t length) {
  if (length == 0 || view_count.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard<std::mutex> lock(views_mutex);
  for (const ViewRange &view : views) {
    if (bytes < view.addr + view.size && view.addr < bytes + length) return true;
  }
  return false;
}

// The bytes to write, copied aside when they lie in a view (see InAView).
bool Unaliased(const unsigned char **bytes, uint64_t length, Scratch *aside) {
  if (!InAView(*bytes, length)) return true;
  if (!aside->Reserve(length)) return false;
  memcpy(aside->data(), *bytes, static_cast<size_t>(length));
  *bytes = aside->data();
  return true;
}

namespace {

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

} // namespace

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
  Scratch aside;
  bool aliased = InAView(into, static_cast<uint64_t>(length)); // see InAView
  if (aliased && !aside.Reserve(static_cast<uint64_t>(length))) return;
  uint64_t size = 0;
  int rc = shmop_table_read(static_cast<int64_t>(handle), static_cast<uint64_t>(start),
                            static_cast<uint64_t>(length), aliased ? aside.data() : into, &size);
  if (rc == SHMOP_EBADHANDLE) return ThrowBadHandle(handle);
  if (!SpanOk(rc, size, start, length)) return;
  if (aliased) memcpy(into, aside.data(), static_cast<size_t>(length));
  info.GetReturnValue().Set(length);
}

namespace {

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
  Nan::Set(result, Nan::New("readOnly").ToLocalChecked(),
           Nan::New<v8::Boolean>(seg->readonly != 0));
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
    return Report(kError, "ERR_SHM_READ_ONLY").Set("operation", "view").Throw();
  }
  if (seg->size > node::Buffer::kMaxLength) {
    double size = static_cast<double>(seg->size);
    shmop_table_release(seg);
    return Report(kRangeError, "ERR_BUFFER_TOO_LARGE")
        .Set("operation", "view")
        .Set("size", size)
        .Set("max", static_cast<double>(node::Buffer::kMaxLength))
        .Throw();
  }
  {
    std::lock_guard<std::mutex> lock(views_mutex);
    views.push_back({seg->addr, seg->size});
    view_count.fetch_add(1, std::memory_order_release);
  }
  Local<Object> view;
  // Node's own call, not Nan::NewBuffer, which asserts (aborts) above 1 GiB
  // although a Buffer may be larger. On failure Node calls ReleaseView itself.
  if (!node::Buffer::New(v8::Isolate::GetCurrent(), reinterpret_cast<char *>(seg->addr),
                         static_cast<size_t>(seg->size), ReleaseView, seg)
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
  if (rc != 0) return Report::Os(rc, "shmctl").Set("key", seg->key).Throw();
  info.GetReturnValue().Set(StatObject(st));
}

/** statKeySHM(key) -> the kernel's description of the segment with this key. */
NAN_METHOD(StatKeySHM) {
  int32_t key;
  if (!KeyArg(info[0], &key)) return;
  int id = -1;
  shmop_stat_t st;
  int rc = shmop_find(key, &id);
  if (rc != 0) return Report::Os(rc, "shmget").Set("key", key).Throw();
  rc = shmop_stat(id, &st);
  if (rc != 0) return Report::Os(rc, "shmctl").Set("key", key).Throw();
  info.GetReturnValue().Set(StatObject(st));
}

/** removeKeySHM(key) -> undefined; marks the segment with this key for deletion. */
NAN_METHOD(RemoveKeySHM) {
  int32_t key;
  if (!KeyArg(info[0], &key)) return;
  int id = -1;
  int rc = shmop_find(key, &id);
  if (rc != 0) return Report::Os(rc, "shmget").Set("key", key).Throw();
  rc = shmop_remove(id);
  if (rc != 0) return Report::Os(rc, "shmctl").Set("key", key).Throw();
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
  if (rc != 0) return Report::Os(rc, "ftok").Set("path", info[0]).Throw();
  info.GetReturnValue().Set(key);
}

} // namespace

NAN_MODULE_INIT(InitSegments) {
  Nan::Set(target, Nan::New("readIntoSHM").ToLocalChecked(),
           NewFunction(ReadIntoSHM, "readIntoSHM"));
  Nan::Set(target, Nan::New("readLength").ToLocalChecked(), NewFunction(ReadLength, "readLength"));
  Nan::SetMethod(target, "infoSHM", InfoSHM);
  Nan::SetMethod(target, "viewSHM", ViewSHM);
  Nan::SetMethod(target, "statSHM", StatSHM);
  Nan::SetMethod(target, "statKeySHM", StatKeySHM);
  Nan::SetMethod(target, "removeKeySHM", RemoveKeySHM);
  Nan::SetMethod(target, "ftokSHM", FtokSHM);
}

} // namespace shm
