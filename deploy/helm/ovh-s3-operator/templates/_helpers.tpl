{{/* The chart's name, possibly overridden. */}}
{{- define "ovh-s3-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already contains the chart's name. */}}
{{- define "ovh-s3-operator.fullname" -}}
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

{{- define "ovh-s3-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ovh-s3-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ovh-s3-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ovh-s3-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ovh-s3-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ovh-s3-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ovh-s3-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "ovh-s3-operator.credentialsSecretName" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-ovh-credentials" (include "ovh-s3-operator.fullname" .)) }}
{{- end }}

{{/* "true" when leader election is on: leaderElection.enabled, or auto and more than one replica. */}}
{{- define "ovh-s3-operator.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- $on := eq (toString $enabled) "true" }}
{{- if eq (toString $enabled) "auto" }}
{{- $on = gt (int .Values.replicaCount) 1 }}
{{- end }}
{{- if and (not $on) (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 needs leader election (leaderElection.enabled: auto or true): without it every replica would act" }}
{{- end }}
{{- $on }}
{{- end }}

{{- define "ovh-s3-operator.podDisruptionBudget" -}}
{{- $enabled := .Values.podDisruptionBudget.enabled }}
{{- if eq (toString $enabled) "auto" }}
{{- gt (int .Values.replicaCount) 1 }}
{{- else }}
{{- eq (toString $enabled) "true" }}
{{- end }}
{{- end }}

{{/*
The operator's rules, in two halves. Cluster-wide mode grants both in one ClusterRole (the rules of
deploy/kustomize/base/rbac.yaml); with watchNamespaces, the namespaced half goes to a Role in each
watched namespace.
*/}}
{{- define "ovh-s3-operator.namespacedRules" -}}
# The custom resources: watch them, add and remove the finalizer, write status.
- apiGroups: [s3.ovh-operator.dev]
  resources: [ovhobjectstorageusers]
  verbs: [get, list, watch, patch]
- apiGroups: [s3.ovh-operator.dev]
  resources: [ovhobjectstorageusers/status]
  verbs: [patch]
# The credentials Secrets. Only Secrets labelled as managed by the operator are watched; others are
# read as metadata only (PartialObjectMetadata), to find out whether a name is taken. The Secrets of
# OVHProjects are read (get) in the operator's own namespace only (the operator checks where they are).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Events about the resources (kubectl describe).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{- define "ovh-s3-operator.clusterRules" -}}
# The access policies (cluster-scoped): read only.
- apiGroups: [s3.ovh-operator.dev]
  resources: [ovhobjectstorageaccesspolicies]
  verbs: [get, list, watch]
# The OVHProjects (cluster-scoped): read them, report whether their credentials work.
- apiGroups: [s3.ovh-operator.dev]
  resources: [ovhprojects]
  verbs: [get, list, watch]
- apiGroups: [s3.ovh-operator.dev]
  resources: [ovhprojects/status]
  verbs: [patch]
# Namespace labels select access policies; the uid of kube-system identifies this cluster's OVH
# users; kopf follows namespaces and CRDs appearing at runtime.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end }}

{{/* A settings value as an env value: strings as they are, numbers and booleans as JSON (1e6 → 1000000). */}}
{{- define "ovh-s3-operator.envValue" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ toJson . | quote }}{{ end }}
{{- end }}
