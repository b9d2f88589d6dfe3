// Strapi's core router: GET /api/pages, /api/pages/:documentId (and the write routes).
const { factories } = require('@strapi/strapi');

module.exports = factories.createCoreRouter('api::page.page');
