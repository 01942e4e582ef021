-- AlterTable
ALTER TABLE "clients" ADD COLUMN     "rate_limit_burst" INTEGER;
