{{/* The chart name, overridable. */}}
{{- define "vmi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Base name of every object: the release name unless overridden. */}}
{{- define "vmi.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels shared by all objects; the VNC side-car selects on them. */}}
{{- define "vmi.labels" -}}
app.kubernetes.io/name: {{ include "vmi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The image: pinned by digest when known, else by tag. */}}
{{- define "vmi.image" -}}
{{- $disk := .Values.containerDisk -}}
{{- if $disk.digest -}}
{{ $disk.repository }}/{{ $disk.name }}@{{ $disk.digest }}
{{- else -}}
{{ $disk.repository }}/{{ $disk.name }}:{{ $disk.tag | default "latest" }}
{{- end }}
{{- end }}
