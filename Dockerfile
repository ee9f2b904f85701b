# Tether backend image: the example app (`handlers/`) on the runtime, run from TypeScript by tsx.
FROM node:20-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so code changes do not reinstall them. tsx is a runtime dependency.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY runtime ./runtime
COPY handlers ./handlers

USER node
ENV PORT=8080 HOST=0.0.0.0
EXPOSE 8080

# What `npm start` runs, but with node itself as PID 1, so SIGTERM from `docker stop` (or Kubernetes)
# reaches Tether directly and starts the drain: unready at once, sockets closed with 1012, exit
# within DRAIN_TIMEOUT_MS. (`npm start` would put npm in between.)
CMD ["node", "--import", "tsx", "runtime/main.ts"]
