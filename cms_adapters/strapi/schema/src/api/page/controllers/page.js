// Strapi's core controller for pages (find, findOne, create, update, delete).
const { factories } = require('@strapi/strapi');

module.exports = factories.createCoreController('api::page.page');
