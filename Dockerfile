# resin's CLI in a container: `docker build -t resin .`, then `docker run resin run --help`.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY agent ./agent
COPY cli ./cli
COPY eval ./eval
COPY lib ./lib
COPY operators ./operators
COPY pipelines ./pipelines
COPY schemas ./schemas
COPY simulate ./simulate
COPY sinks ./sinks
COPY bench ./bench
USER node
EXPOSE 9464
ENTRYPOINT ["node", "/app/bin/resin.js"]
CMD ["--help"]
