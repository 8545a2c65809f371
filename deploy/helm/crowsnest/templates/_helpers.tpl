{{- define "crowsnest.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- define "crowsnest.labels" -}}
app.kubernetes.io/name: crowsnest
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
