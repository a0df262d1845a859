{{- define "medai-harbor-redis.labels" -}}
app.kubernetes.io/name: medai-harbor-redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "medai-harbor-redis.selector" -}}
app.kubernetes.io/name: medai-harbor-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
