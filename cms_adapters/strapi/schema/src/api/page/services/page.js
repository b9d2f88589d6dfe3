// Strapi's core service for pages.
const { factories } = require('@strapi/strapi');

module.exports = factories.createCoreService('api::page.page');
