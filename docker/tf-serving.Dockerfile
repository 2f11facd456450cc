# The production model server with the released models inside: tensorflow/serving reading
# the layout `eyepic release install` writes (/models/<name>/<version>/saved_model.pb,
# variables/, assets.extra/tf_serving_warmup_requests, metadata.json) with serving/'s
# models.config (stable/canary labels), batching.config and monitoring.config.
# An alternative to the eyepic-models volume of k8s/base/tf-serving.yaml for clusters that
# ship models as images; the API pods still need the same exports' metadata.json
# (EYEPIC_MODEL_METADATA_DIR). Not built here: no image registry serves tensorflow/serving.
#
#   docker build -f docker/tf-serving.Dockerfile \
#     --build-arg MODELS=REGISTRY/eyepic-model-server:0.1.0 -t REGISTRY/eyepic-tf-serving:0.1.0 .
ARG TF_SERVING_BASE=tensorflow/serving:2.21.0
ARG MODELS=localhost/eyepic-model-server:0.1.0

FROM ${MODELS} AS models

FROM ${TF_SERVING_BASE}
COPY --from=models /models /models
COPY serving/models.config serving/batching.config serving/monitoring.config /config/
USER 10001:10001
EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server"]
CMD ["--model_config_file=/config/models.config", "--batching_parameters_file=/config/batching.config", \
     "--enable_batching", "--monitoring_config_file=/config/monitoring.config", \
     "--port=8500", "--rest_api_port=8501"]
