// Loads a SavedModel the way TensorFlow Serving does and answers requests with Session::Run.
//
//   saved_model_check EXPORT_DIR REQUESTS.pb RESULT.pb SIGNATURES.pb
//
// tf_style/cc_loader.py builds this against the installed tensorflow wheel's headers and
// libraries (tf_style/cc_build.py) and compares its answers with the Python TF1 loader's.
//
// The SavedModel is loaded with tensorflow::LoadSavedModel (tag "serve"), TensorFlow Serving's
// loader, into ONE session. Every request is one Session::Run on its signature's input and
// output tensor names (bundle.meta_graph_def.signature_def), as the model server answers a
// Predict request.
//
// REQUESTS.pb: a tensorflow.StructuredValue whose list_value holds one dict per request:
//   {"signature": string_value, "inputs": dict_value {input key: tensor_value}}.
// RESULT.pb: a StructuredValue dict: {"load_error": {"error_code", "error_message"}} when the
// loader fails, else {"responses": list_value}, one dict per request, in order:
//   {"outputs": dict_value {output key: tensor_value}} or {"error_code": int64_value (the
//   tensorflow::error::Code), "error_message": string_value}.
// SIGNATURES.pb: a tensorflow.MetaGraphDef holding only the loaded signature_def map.
//
// Exit status: 0 when RESULT.pb was written (whatever it says), 2 for bad arguments, 1 when a
// file could not be read or written.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/struct.pb.h"

namespace {

using tensorflow::StructuredValue;

StructuredValue ErrorValue(const absl::Status& status) {
  StructuredValue out;
  auto& fields = *out.mutable_dict_value()->mutable_fields();
  fields["error_code"].set_int64_value(static_cast<int64_t>(status.code()));
  fields["error_message"].set_string_value(std::string(status.message()));
  return out;
}

// One request: its signature's tensor names, one Session::Run, the outputs by key.
absl::Status Answer(const tensorflow::SavedModelBundle& bundle, const StructuredValue& request,
                    StructuredValue* response) {
  const auto& fields = request.dict_value().fields();
  const auto signature_field = fields.find("signature");
  const auto inputs_field = fields.find("inputs");
  if (signature_field == fields.end() || inputs_field == fields.end()) {
    return absl::InvalidArgumentError("expected a request with \"signature\" and \"inputs\"");
  }
  const std::string& name = signature_field->second.string_value();
  const auto& signatures = bundle.meta_graph_def.signature_def();
  const auto signature = signatures.find(name);
  if (signature == signatures.end()) {
    return absl::NotFoundError("expected a signature of the SavedModel; got \"" + name + "\"");
  }
  const auto& inputs = signature->second.inputs();
  const auto& outputs = signature->second.outputs();
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  for (const auto& [key, value] : inputs_field->second.dict_value().fields()) {
    const auto input = inputs.find(key);
    if (input == inputs.end()) {
      return absl::InvalidArgumentError("signature \"" + name + "\" has no input \"" + key + "\"");
    }
    tensorflow::Tensor tensor;
    if (!tensor.FromProto(value.tensor_value())) {
      return absl::InvalidArgumentError("input \"" + key + "\" is not a valid TensorProto");
    }
    feeds.emplace_back(input->second.name(), std::move(tensor));
  }
  std::vector<std::string> keys;
  for (const auto& [key, output] : outputs) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> names;
  for (const auto& key : keys) names.push_back(outputs.at(key).name());
  std::vector<tensorflow::Tensor> answers;
  absl::Status status = bundle.session->Run(feeds, names, {}, &answers);
  if (!status.ok()) return status;
  auto& out = *(*response->mutable_dict_value()->mutable_fields())["outputs"].mutable_dict_value()->mutable_fields();
  for (size_t i = 0; i < keys.size(); ++i) {
    tensorflow::TensorProto* proto = out[keys[i]].mutable_tensor_value();
    if (answers[i].dtype() == tensorflow::DT_STRING) {
      answers[i].AsProtoField(proto);  // string_val: what tf.make_ndarray reads for strings
    } else {
      answers[i].AsProtoTensorContent(proto);
    }
  }
  return absl::OkStatus();
}

bool Write(const std::string& path, const google::protobuf::MessageLite& proto) {
  const absl::Status status = tensorflow::WriteBinaryProto(tensorflow::Env::Default(), path, proto);
  if (!status.ok()) std::cerr << "saved_model_check: cannot write " << path << ": " << status << "\n";
  return status.ok();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: saved_model_check EXPORT_DIR REQUESTS.pb RESULT.pb SIGNATURES.pb\n";
    return 2;
  }
  const std::string export_dir = argv[1], requests_path = argv[2], result_path = argv[3];
  StructuredValue requests;
  const absl::Status read = tensorflow::ReadBinaryProto(tensorflow::Env::Default(), requests_path, &requests);
  if (!read.ok()) {
    std::cerr << "saved_model_check: cannot read " << requests_path << ": " << read << "\n";
    return 1;
  }
  StructuredValue result;
  auto& fields = *result.mutable_dict_value()->mutable_fields();
  tensorflow::SavedModelBundle bundle;
  // TensorFlow Serving's loader; "serve" is kSavedModelTagServe (tag_constants.h is not in the wheel).
  const absl::Status load = tensorflow::LoadSavedModel(tensorflow::SessionOptions(), tensorflow::RunOptions(),
                                                       export_dir, {"serve"}, &bundle);
  if (!load.ok()) {
    fields["load_error"] = ErrorValue(load);
    return Write(result_path, result) ? 0 : 1;
  }
  tensorflow::MetaGraphDef signatures;
  *signatures.mutable_signature_def() = bundle.meta_graph_def.signature_def();
  if (!Write(argv[4], signatures)) return 1;
  auto* responses = fields["responses"].mutable_list_value();
  for (const StructuredValue& request : requests.list_value().values()) {
    StructuredValue* response = responses->add_values();
    const absl::Status status = Answer(bundle, request, response);
    if (!status.ok()) *response = ErrorValue(status);
  }
  return Write(result_path, result) ? 0 : 1;
}
