{{/* Names, labels and small shared pieces of every template. */}}

{{- define "semantik.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's prefix of every object's name: <release> when it already contains the chart's name. */}}
{{- define "semantik.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's object name: include "semantik.componentName" (list . "gateway") */}}
{{- define "semantik.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "semantik.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component: include "semantik.selectorLabels" (list . "gateway") */}}
{{- define "semantik.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "semantik.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Every label of a component's objects. */}}
{{- define "semantik.labels" -}}
{{- $root := index . 0 -}}
{{ include "semantik.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: semantik
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* repository:tag of an image value ({repository, tag, pullPolicy}); the tag defaults to the appVersion. */}}
{{- define "semantik.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* The restricted pod and container security settings every pod of the chart runs with. */}}
{{- define "semantik.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "semantik.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scheduling fields of a component's values (nodeSelector, tolerations, affinity), when set. */}}
{{- define "semantik.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "semantik.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A Secret's value kept across upgrades: the value the Secret already holds (lookup), else `generated`.
include "semantik.keptSecretValue" (dict "root" . "name" NAME "key" KEY "generated" VALUE)
`helm template` and `--dry-run` cannot look up: they show a fresh value each time.
*/}}
{{- define "semantik.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- .generated }}
{{- end }}
{{- end }}

{{/* --- Names of the Secrets and endpoints the components share --- */}}

{{- define "semantik.internalTokenSecret" -}}
{{- default (include "semantik.componentName" (list . "internal")) .Values.auth.internalToken.existingSecret }}
{{- end }}

{{- define "semantik.apiKeySecret" -}}
{{- default (include "semantik.componentName" (list . "api-key")) .Values.auth.apiKey.existingSecret }}
{{- end }}

{{- define "semantik.apiKeySecretKey" -}}
{{- if .Values.auth.apiKey.existingSecret }}{{ .Values.auth.apiKey.existingSecretKey }}{{ else }}api-key{{ end }}
{{- end }}

{{/* The Secret and key holding SEMANTIK_DATABASE_URL. */}}
{{- define "semantik.databaseSecret" -}}
{{- if .Values.postgresql.enabled }}
{{- include "semantik.componentName" (list . "postgresql") }}
{{- else }}
{{- default (include "semantik.componentName" (list . "database")) .Values.postgresql.external.existingSecret }}
{{- end }}
{{- end }}

{{- define "semantik.databaseSecretKey" -}}
{{- if and (not .Values.postgresql.enabled) .Values.postgresql.external.existingSecret }}
{{- .Values.postgresql.external.existingSecretKey }}
{{- else }}database-url{{ end }}
{{- end }}

{{/* SEMANTIK_QDRANT_URL; empty in embedded mode, where the gateway keeps Qdrant's local-mode store itself. */}}
{{- define "semantik.qdrantUrl" -}}
{{- $mode := .Values.qdrant.mode }}
{{- if eq $mode "statefulset" }}
{{- printf "http://%s:6333" (include "semantik.componentName" (list . "qdrant")) }}
{{- else if eq $mode "external" }}
{{- required "qdrant.external.url is required when qdrant.mode is external" .Values.qdrant.external.url }}
{{- end }}
{{- end }}

{{/* The Secret and key of Qdrant's API key; empty in embedded mode and when an external Qdrant has none. */}}
{{- define "semantik.qdrantSecret" -}}
{{- $mode := .Values.qdrant.mode }}
{{- if eq $mode "statefulset" }}
{{- include "semantik.componentName" (list . "qdrant") }}
{{- else if eq $mode "external" }}
{{- if .Values.qdrant.external.existingSecret }}
{{- .Values.qdrant.external.existingSecret }}
{{- else if .Values.qdrant.external.apiKey }}
{{- include "semantik.componentName" (list . "qdrant-external") }}
{{- end }}
{{- end }}
{{- end }}

{{- define "semantik.qdrantSecretKey" -}}
{{- if and (eq .Values.qdrant.mode "external") .Values.qdrant.external.existingSecret }}
{{- .Values.qdrant.external.existingSecretKey }}
{{- else }}api-key{{ end }}
{{- end }}

{{/*
Embedded mode: the claim (or emptyDir) the gateway keeps its vector store on, mounted at /data; Qdrant's
local mode locks its folder to one process, hence one gateway pod (the schema) replaced by Recreate.
*/}}
{{- define "semantik.gatewayDataClaim" -}}
{{- include "semantik.componentName" (list . "gateway-data") }}
{{- end }}

{{/* The Secret whose key `redis-url` holds the Redis URL with its password (the chart's or the external one). */}}
{{- define "semantik.redisSecret" -}}
{{- if .Values.redis.enabled }}
{{- include "semantik.componentName" (list . "redis") }}
{{- else }}
{{- include "semantik.componentName" (list . "redis-external") }}
{{- end }}
{{- end }}

{{/* The Secret (key `token`) with the bearer token every embedder requires. */}}
{{- define "semantik.embedderTokenSecret" -}}
{{- default (include "semantik.componentName" (list . "embedder-token")) .Values.auth.embedderToken.existingSecret }}
{{- end }}

{{- define "semantik.embedderTokenEnv" -}}
- name: SEMANTIK_EMBEDDER_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "semantik.embedderTokenSecret" . }}, key: token}
{{- end }}

{{- define "semantik.gatewayUrl" -}}
{{- printf "http://%s:%d" (include "semantik.componentName" (list . "gateway")) (int .Values.gateway.service.port) }}
{{- end }}

{{- define "semantik.embedderUrl" -}}
{{- printf "http://%s:8000" (include "semantik.componentName" (list . "embedder")) }}
{{- end }}

{{- define "semantik.modelsClaim" -}}
{{- default (include "semantik.componentName" (list . "models")) .Values.models.existingClaim }}
{{- end }}

{{/* Where a model sits in the mounted cache (the Hugging Face hub layout), as the operator mounts it. */}}
{{- define "semantik.modelDirectory" -}}
{{- printf "/models/models--%s" (replace "/" "--" .) }}
{{- end }}

{{/* The bundled all-MiniLM-L6-v2 needs no model cache; any other model is read from it. */}}
{{- define "semantik.usesModelCache" -}}
{{- if or .Values.embedder.modelPath (ne .Values.embedder.model "sentence-transformers/all-MiniLM-L6-v2") }}true{{ end }}
{{- end }}

{{/* The gateway reads the model cache for its query tokenizer (a model not bundled) and for a reranker. */}}
{{- define "semantik.gatewayUsesModelCache" -}}
{{- if or (include "semantik.usesModelCache" .) .Values.gateway.rerank.enabled }}true{{ end }}
{{- end }}

{{/* SEMANTIK_MODEL_PATH / SEMANTIK_EMBEDDER_MODEL_PATH: empty for the bundled model. */}}
{{- define "semantik.modelPath" -}}
{{- if .Values.embedder.modelPath }}
{{- .Values.embedder.modelPath }}
{{- else if include "semantik.usesModelCache" . }}
{{- include "semantik.modelDirectory" .Values.embedder.model }}
{{- end }}
{{- end }}

{{/* The gateway's environment from Secrets: database URL, Qdrant API key, internal token, Redis URL, embedder token. */}}
{{- define "semantik.gatewaySecretEnv" -}}
- name: SEMANTIK_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ include "semantik.databaseSecret" . }}, key: {{ include "semantik.databaseSecretKey" . }}}
{{- with include "semantik.qdrantSecret" . }}
- name: SEMANTIK_QDRANT_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ include "semantik.qdrantSecretKey" $ }}}
{{- end }}
- name: SEMANTIK_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "semantik.internalTokenSecret" . }}, key: token}
- name: SEMANTIK_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ include "semantik.redisSecret" . }}, key: redis-url}
{{ include "semantik.embedderTokenEnv" . }}
{{- end }}

{{/* The egress rule of a pod that may only look names up: port 53 anywhere (cluster DNS lives in different places). */}}
{{- define "semantik.dnsEgress" -}}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
