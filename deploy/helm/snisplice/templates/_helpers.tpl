{{/* The chart name, or nameOverride: the app.kubernetes.io/name label. */}}
{{- define "snisplice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object name prefix: the release name where it contains the chart name. */}}
{{- define "snisplice.fullname" -}}
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

{{/* The DaemonSet's selector (immutable once installed). */}}
{{- define "snisplice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "snisplice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "snisplice.labels" -}}
{{ include "snisplice.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with omit (.Values.commonLabels | default dict) "app.kubernetes.io/name" "app.kubernetes.io/instance" "helm.sh/chart" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the pods: the selector's, then podLabels over commonLabels. */}}
{{- define "snisplice.podLabels" -}}
{{ include "snisplice.selectorLabels" . }}
{{- with omit (merge (dict) (.Values.podLabels | default dict) (.Values.commonLabels | default dict)) "app.kubernetes.io/name" "app.kubernetes.io/instance" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Annotations of the pods: the scrape annotations and the config checksum over podAnnotations. */}}
{{- define "snisplice.podAnnotations" -}}
{{- $annotations := dict }}
{{- if .Values.metrics.scrapeAnnotations }}
{{- $_ := set $annotations "prometheus.io/scrape" "true" }}
{{- $_ := set $annotations "prometheus.io/port" (toString .Values.metrics.port) }}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" }}
{{- end }}
{{- if .Values.rollOnConfigChange }}
{{- $_ := set $annotations "checksum/config" (include (print .Template.BasePath "/configmap.yaml") . | sha256sum) }}
{{- end }}
{{- with merge $annotations (.Values.podAnnotations | default dict) }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
The configuration file: .Values.config through tpl, refused unless metrics.listen binds
.Values.metrics.port on a non-loopback address, which the probes and the scrape annotations
need on hostNetwork.
*/}}
{{- define "snisplice.config" -}}
{{- $config := tpl .Values.config . }}
{{- $parsed := fromYaml $config }}
{{- if hasKey $parsed "Error" }}
{{- fail (printf "config is not YAML: %s" $parsed.Error) }}
{{- end }}
{{- $listen := dig "metrics" "listen" "" $parsed | toString }}
{{- if not (hasSuffix (printf ":%v" .Values.metrics.port) $listen) }}
{{- fail (printf "config metrics.listen %q must bind metrics.port %v: the probes and the scrape annotations use it" $listen .Values.metrics.port) }}
{{- end }}
{{- if or (hasPrefix "127." $listen) (hasPrefix "[::1]" $listen) (hasPrefix "localhost" $listen) }}
{{- fail (printf "config metrics.listen %q is loopback: kubelet probes the node's address" $listen) }}
{{- end }}
{{- $config }}
{{- end }}
