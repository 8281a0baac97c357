#include "tests/integration/reflection_client.h"

#include <grpcpp/grpcpp.h>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace lifecycle::testing {

absl::StatusOr<std::set<std::string>> ReflectedServices(const std::string& address) {
  namespace refl = grpc::reflection::v1alpha;
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = refl::ServerReflection::NewStub(channel)->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  if (!stream->Write(req)) return absl::UnavailableError("reflection: cannot send");
  stream->WritesDone();
  refl::ServerReflectionResponse resp;
  if (!stream->Read(&resp)) return absl::UnavailableError("reflection: no answer");
  grpc::Status s = stream->Finish();
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  std::set<std::string> names;
  for (const auto& svc : resp.list_services_response().service()) names.insert(svc.name());
  return names;
}

}  // namespace lifecycle::testing
