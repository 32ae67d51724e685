{{- define "virtvnc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-virtvnc" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "virtvnc.labels" -}}
app.kubernetes.io/name: virtvnc
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
