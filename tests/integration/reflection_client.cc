#include "tests/integration/reflection_client.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace lifecycle::testing {

namespace {

namespace refl = grpc::reflection::v1alpha;

// One request on a reflection stream, and its answer.
absl::StatusOr<refl::ServerReflectionResponse> Reflect(const std::shared_ptr<grpc::Channel>& channel,
                                                       const refl::ServerReflectionRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = refl::ServerReflection::NewStub(channel)->ServerReflectionInfo(&ctx);
  if (!stream->Write(req)) return absl::UnavailableError("reflection: cannot send");
  stream->WritesDone();
  refl::ServerReflectionResponse resp;
  if (!stream->Read(&resp)) return absl::UnavailableError("reflection: no answer");
  grpc::Status s = stream->Finish();
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  if (resp.has_error_response()) {
    return absl::NotFoundError(absl::StrCat("reflection: ", resp.error_response().error_message()));
  }
  return resp;
}

}  // namespace

absl::StatusOr<std::set<std::string>> ReflectedServices(const std::string& address) {
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  auto resp = Reflect(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), req);
  if (!resp.ok()) return resp.status();
  std::set<std::string> names;
  for (const auto& svc : resp->list_services_response().service()) names.insert(svc.name());
  return names;
}

absl::StatusOr<std::string> CallThroughReflection(const std::string& address,
                                                  const std::string& service,
                                                  const std::string& method,
                                                  const std::string& request_json) {
  namespace pb = google::protobuf;
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  // 1. The file descriptors, from reflection (file_containing_symbol).
  pb::DescriptorPool pool;
  {
    refl::ServerReflectionRequest req;
    req.set_file_containing_symbol(service);
    auto resp = Reflect(channel, req);
    if (!resp.ok()) return resp.status();
    // Dependencies come first or later in the list: add until nothing more can be.
    std::vector<pb::FileDescriptorProto> files;
    for (const auto& bytes : resp->file_descriptor_response().file_descriptor_proto()) {
      pb::FileDescriptorProto f;
      if (!f.ParseFromString(bytes)) return absl::InternalError("reflection: bad descriptor");
      files.push_back(std::move(f));
    }
    for (size_t added = 0, round = 0; added < files.size() && round <= files.size(); ++round) {
      for (auto& f : files) {
        if (f.name().empty() || pool.FindFileByName(f.name())) continue;
        bool ready = true;
        for (const auto& dep : f.dependency()) ready = ready && pool.FindFileByName(dep);
        if (ready && pool.BuildFile(f)) ++added;
      }
    }
  }
  const pb::ServiceDescriptor* svc = pool.FindServiceByName(service);
  if (!svc) return absl::NotFoundError(absl::StrCat("reflection does not describe ", service));
  const pb::MethodDescriptor* m = svc->FindMethodByName(method);
  if (!m) return absl::NotFoundError(absl::StrCat(service, " has no method ", method));
  // 2. The request, from JSON.
  pb::DynamicMessageFactory factory(&pool);
  std::unique_ptr<pb::Message> request(factory.GetPrototype(m->input_type())->New());
  if (!pb::util::JsonStringToMessage(request_json, request.get()).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request JSON for ", m->input_type()->full_name()));
  }
  std::string wire;
  request->SerializeToString(&wire);
  // 3. The call, as raw bytes.
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(wire);
  grpc::ByteBuffer in(&slice, 1), out;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, absl::StrCat("/", service, "/", method), grpc::StubOptions(), &in, &out,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   done = true;
                   cv.notify_all();
                 });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  std::vector<grpc::Slice> slices;
  if (!out.Dump(&slices).ok()) return absl::InternalError("response bytes");
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  // 4. The response, to JSON.
  std::unique_ptr<pb::Message> response(factory.GetPrototype(m->output_type())->New());
  if (!response->ParseFromString(bytes)) return absl::InternalError("response does not parse");
  std::string json;
  if (!pb::util::MessageToJsonString(*response, &json).ok()) return absl::InternalError("to JSON");
  return json;
}

}  // namespace lifecycle::testing
