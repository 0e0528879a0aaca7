// pm2 start ecosystem.config.js; then `pm2 reload pm2-counter` (rolling), not `pm2 restart`.
module.exports = {
  apps: [{
    name: 'pm2-counter',
    script: 'app.js',
    exec_mode: 'cluster',
    instances: 4,
    // A new worker is online once it called process.send('ready') after mem.start().
    wait_ready: true,
    listen_timeout: 15000,
    // Time for mem.stop() (a host hands its role over and saves) before SIGKILL.
    kill_timeout: 5000,
    env: { PORT: 3000 }
  }]
}
