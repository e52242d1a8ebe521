{{/* Names: <fullname>-<component>; fullname is the release name when it contains the chart name. */}}
{{- define "aof.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aof.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object's metadata. */}}
{{- define "aof.labels" -}}
app.kubernetes.io/part-of: aof
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector of one component: ctx = (dict "root" $ "name" "<fullname>-<component>"). */}}
{{- define "aof.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* An image reference: ctx = (dict "root" $ "image" .Values.images.X). */}}
{{- define "aof.image" -}}
{{- $i := .image -}}
{{- $repo := ternary (printf "%s/%s" $i.registry $i.repository) $i.repository (ne $i.registry "") -}}
{{- $tag := default .root.Chart.AppVersion $i.tag -}}
{{- if $i.digest -}}
{{- printf "%s:%s@%s" $repo $tag $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The hardening every pod and container gets (the Kustomize base's). */}}
{{- define "aof.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "aof.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "aof.coordinatorUrl" -}}
{{- printf "http://%s-coordinator:%v" (include "aof.fullname" .) .Values.coordinator.service.port -}}
{{- end -}}

{{/* The Secret holding AOF_DATABASE_URL (postgres). */}}
{{- define "aof.databaseSecret" -}}
{{- default (printf "%s-database" (include "aof.fullname" .)) .Values.coordinator.database.existingSecret -}}
{{- end -}}

{{/* The runner key Secret: the chart's own when runners.apiKey.value is set. */}}
{{- define "aof.runnerKeySecret" -}}
{{- if .Values.runners.apiKey.value -}}
{{- printf "%s-runner-key" (include "aof.fullname" .) -}}
{{- else -}}
{{- required "runners.apiKey: set existingSecret or value" .Values.runners.apiKey.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "aof.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "aof.labels" .root | nindent 4 }}
spec:
  {{- if .minAvailable }}
  minAvailable: 1
  {{- else }}
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "aof.selector" . | nindent 6 }}
{{- end -}}
